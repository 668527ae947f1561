"""The batcher's failure paths with fake inference functions: every ticket settles."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from service.errors import Draining, InferenceFailed, OutputMismatch, Unavailable
from testing.batching import MODEL, FakeModel, Harness, answer, occupied
from testing.waiting import poll

Make = Callable[..., Harness]


async def test_exception_fails_the_whole_batch_and_the_worker_keeps_serving(
    batcher: Make,
) -> None:
    fake = FakeModel()
    calls = {"n": 0}

    def fn(payloads: list[Any]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 1:
            return fake(payloads)
        if calls["n"] == 2:
            raise RuntimeError("secret internals")
        return np.asarray(payloads) * 2

    h = batcher(fn)
    h.fakes.append(fake)
    first = await occupied(h, fake)
    batch = [h.submit([i]) for i in (1, 2, 3)]
    fake.gate.set()
    assert await answer(first) == [0]
    for fut in batch:
        with pytest.raises(InferenceFailed) as info:
            await answer(fut)
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "secret" not in info.value.message
    assert h.batcher.alive
    assert await answer(h.submit([5])) == [10]


async def test_output_count_mismatch_is_a_typed_error(batcher: Make) -> None:
    h = batcher(lambda payloads: np.asarray(payloads[:-1]))
    with pytest.raises(OutputMismatch):
        await answer(h.submit([1, 2]))


class Fatal(BaseException):
    """Escapes ``except Exception``: stands for whatever could kill the thread."""


async def test_worker_death_settles_everything_and_reports_not_alive(batcher: Make) -> None:
    fake = FakeModel()

    def fn(payloads: list[Any]) -> np.ndarray:
        fake(payloads)
        raise Fatal

    h = batcher(fn)
    h.fakes.append(fake)
    inflight = await occupied(h, fake)
    queued = h.submit([2])
    fake.gate.set()
    with pytest.raises(InferenceFailed):
        await answer(inflight)
    with pytest.raises(Unavailable):
        await answer(queued)
    assert not h.batcher.alive
    with pytest.raises(Unavailable):
        h.submit([3])


async def test_stop_finishes_queued_work_then_refuses(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake, max_batch_size=2)
    first = await occupied(h, fake)
    queued = [h.submit([i]) for i in range(1, 5)]
    stopping = asyncio.create_task(asyncio.to_thread(h.batcher.stop, 30))
    await asyncio.to_thread(poll, lambda: _refuses(h), 10, "the stop to refuse work")
    fake.gate.set()
    await answer(stopping, "the stop")
    assert await answer(asyncio.gather(first, *queued)) == [[0], [2], [4], [6], [8]]


async def test_stop_timeout_fails_what_is_still_queued(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake)
    await occupied(h, fake)
    queued = h.submit([1])
    await asyncio.to_thread(h.batcher.stop, 0.05)  # the worker is still held
    with pytest.raises(Draining):
        await answer(queued)
    assert not queued.cancelled() and h.batcher.depth(MODEL) == 0


def _refuses(h: Harness) -> bool:
    try:  # one admitted before the stop began is past its deadline: it is never run
        h.batcher.submit(MODEL, [1], 0.0)
    except Draining:
        return True
    return False
