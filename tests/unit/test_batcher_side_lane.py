"""A side lane of the batcher (explanations): bounded, one item per batch, after the others."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from service.engine.tickets import Item, Ticket, deliver
from service.errors import DeadlineExceeded, Draining, ExplainUnavailable, QueueFull
from testing.batching import MODEL, WAIT_S, FakeModel, Harness, answer, occupied
from testing.waiting import poll

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


class Readiness:
    """A lane's readiness callable that the test flips; records that the worker asked."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.asked = threading.Event()

    def __call__(self) -> bool:
        self.asked.set()
        return self.ready.is_set()


async def test_a_side_lane_that_is_not_ready_waits_while_the_main_lane_runs(
    batcher: Make,
) -> None:
    fake, side, readiness = FakeModel(), FakeModel(), Readiness()
    h = batcher(fake)
    h.add_model(SIDE, side, bound=2, ready=readiness)
    explained = h.submit([1], model=SIDE)
    assert await asyncio.to_thread(readiness.asked.wait, WAIT_S), "the lane was never asked"
    classified = [h.submit([i]) for i in (3, 4)]  # the worker is free for them
    assert await answer(asyncio.gather(*classified)) == [[6], [8]]
    assert side.batches == [] and not explained.done()
    readiness.ready.set()
    h.batcher.wake()
    assert await answer(explained, "the explanation once its lane is ready") == [2]
    assert side.batches == [[1]]


async def test_items_of_a_lane_that_is_not_ready_fail_at_their_deadline(batcher: Make) -> None:
    fake, side, readiness = FakeModel(), FakeModel(), Readiness()
    h = batcher(fake)
    h.add_model(SIDE, side, bound=2, ready=readiness)
    late = h.submit([1], deadline=time.monotonic() + 0.05, model=SIDE)
    kept = h.submit([2], model=SIDE)
    with pytest.raises(DeadlineExceeded):
        await answer(late, "the deadline of the waiting explanation")
    assert h.batcher.depth(SIDE) == 1 and not kept.done()
    readiness.ready.set()
    h.batcher.wake()
    assert await answer(kept) == [4]
    assert side.batches == [[2]]


async def test_a_lane_that_raises_a_service_error_answers_with_it(batcher: Make) -> None:
    def refuse(_payloads: list[object]) -> np.ndarray:
        raise ExplainUnavailable()

    h = batcher(FakeModel())
    h.add_model(SIDE, refuse, bound=2)
    with pytest.raises(ExplainUnavailable):
        await answer(h.submit([1], model=SIDE))
    assert await answer(h.submit([3])) == [6]  # the worker goes on


async def test_a_drain_finishes_the_items_of_a_lane_once_it_is_ready(batcher: Make) -> None:
    side, readiness = FakeModel(), Readiness()
    h = batcher(FakeModel())
    h.add_model(SIDE, side, bound=2, ready=readiness)
    explained = h.submit([1], model=SIDE)
    assert await asyncio.to_thread(readiness.asked.wait, WAIT_S), "the lane was never asked"
    stopped = asyncio.ensure_future(asyncio.to_thread(h.batcher.stop, WAIT_S))
    readiness.ready.set()
    h.batcher.wake()
    assert await answer(explained, "the explanation queued before the drain") == [2]
    await answer(stopped, "the drain")


async def test_a_drain_fails_what_a_lane_never_got_ready_for(batcher: Make) -> None:
    h = batcher(FakeModel())
    h.add_model(SIDE, FakeModel(), bound=2, ready=lambda: False)
    explained = h.submit([1], model=SIDE)
    await asyncio.to_thread(h.batcher.stop, 0.01)
    with pytest.raises(Draining):
        await answer(explained, "the explanation's refusal")
    assert await asyncio.to_thread(poll, lambda: not h.batcher.alive, WAIT_S, "the worker to end")
