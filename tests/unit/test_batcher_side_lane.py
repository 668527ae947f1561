"""A side lane of the batcher (explanations): bounded, one item per batch, after the others."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest

from service.engine.tickets import Item, Ticket, deliver
from service.errors import QueueFull
from testing.batching import MODEL, FakeModel, Harness, answer, occupied

Make = Callable[..., Harness]
SIDE = "m:explain"


async def test_a_side_lane_refuses_beyond_its_bound_at_once(batcher: Make) -> None:
    fake, side = FakeModel(), FakeModel()
    h = batcher(fake)
    h.add_model(SIDE, side, bound=2)
    first = await occupied(h, fake)
    with pytest.raises(QueueFull):
        h.submit([1, 2, 3], model=SIDE)  # more than the bound in one request
    queued = [h.submit([1], model=SIDE), h.submit([2], model=SIDE)]
    with pytest.raises(QueueFull):
        h.submit([3], model=SIDE)
    classified = h.submit([5])  # the main lane is not bounded by the side lane
    fake.gate.set()
    assert await answer(asyncio.gather(first, classified, *queued)) == [[0], [10], [2], [4]]


async def test_a_side_lane_waits_for_the_main_lane_and_runs_one_item_a_batch(
    batcher: Make,
) -> None:
    fake, side = FakeModel(), FakeModel()
    h = batcher(fake, max_batch_size=4)
    h.add_model(SIDE, side, bound=4)
    first = await occupied(h, fake)
    explained = h.submit([1, 2], model=SIDE)  # queued before the classifications
    classified = [h.submit([i]) for i in (3, 4)]
    fake.gate.set()
    assert await answer(asyncio.gather(first, *classified, explained)) == [[0], [6], [8], [2, 4]]
    assert fake.batches == [[0], [3, 4]]
    assert side.batches == [[1], [2]]
    assert h.batcher.depth(SIDE) == 0 and h.batcher.depth(MODEL) == 0


def test_records_are_sliced_and_joined_like_any_block() -> None:
    dtype = np.dtype([("probs", np.float32, (3,)), ("map", np.float32, (2, 2)), ("target", "i8")])
    ticket = Ticket(2, time.monotonic() + 60, _pending=2)
    for i in range(2):
        out = np.zeros(1, dtype=dtype)
        out[0]["target"] = i + 7
        done = deliver([Item(ticket, i)], out)
    assert done == [ticket]
    assert ticket.output is not None and ticket.output["target"].tolist() == [7, 8]
