"""The batcher's failure paths with fake inference functions: every ticket settles."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from service.errors import Draining, InferenceFailed, OutputMismatch, Unavailable
from testing.batching import MODEL, FakeModel, make, occupied, soon, submit
from testing.waiting import poll


async def test_exception_fails_the_whole_batch_and_the_worker_keeps_serving() -> None:
    calls = {"n": 0}

    def flaky(payloads: list[Any]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("secret internals")
        return [p * 2 for p in payloads]

    gate = FakeModel()
    gate.hold()

    def fn(payloads: list[Any]) -> Sequence[Any]:
        if calls["n"] == 0:
            gate(payloads)
        return flaky(payloads)

    b = make(fn)
    first = submit(b, [0])
    await gate.busy()
    batch = [submit(b, [i]) for i in (1, 2, 3)]
    gate.gate.set()
    assert await first.future == [0]
    for t in batch:
        with pytest.raises(InferenceFailed) as info:
            await t.future
        assert isinstance(info.value.__cause__, RuntimeError)
        assert "secret" not in info.value.message
    assert b.alive
    assert await submit(b, [5]).future == [10]
    b.stop(1)


async def test_output_count_mismatch_is_a_typed_error() -> None:
    b = make(lambda payloads: payloads[:-1])
    with pytest.raises(OutputMismatch):
        await submit(b, [1, 2]).future
    b.stop(1)


class Fatal(BaseException):
    """Escapes ``except Exception``: stands for whatever could kill the thread."""


async def test_worker_death_settles_everything_and_reports_not_alive() -> None:
    fake = FakeModel()

    def fn(payloads: list[Any]) -> Sequence[Any]:
        fake(payloads)
        raise Fatal

    b = make(fn)
    fake.hold()
    inflight = submit(b, [1])
    await fake.busy()
    queued = submit(b, [2])
    admitted = b.reserve(MODEL, 1, soon())
    fake.gate.set()
    with pytest.raises(InferenceFailed):
        await inflight.future
    with pytest.raises(Unavailable):
        await queued.future
    assert not b.alive
    with pytest.raises(Unavailable):
        b.reserve(MODEL, 1, soon())
    with pytest.raises(Unavailable):
        b.submit(admitted, [3])


async def test_stop_drains_queued_work_then_refuses() -> None:
    fake = FakeModel()
    b = make(fake, max_batch_size=2)
    fake.hold()
    tickets = [submit(b, [i]) for i in range(5)]
    await fake.busy()
    stopping = asyncio.create_task(asyncio.to_thread(b.stop, 5))
    await asyncio.to_thread(poll, lambda: _refuses(b), 5, "the batcher to close")
    fake.gate.set()
    await stopping
    assert [await t.future for t in tickets] == [[0], [2], [4], [6], [8]]
    with pytest.raises(Draining):
        submit(b, [1])


async def test_close_refuses_new_requests_but_admitted_ones_finish() -> None:
    fake = FakeModel()
    b = await occupied(fake)
    admitted = b.reserve(MODEL, 1, soon())
    b.close()
    with pytest.raises(Draining):
        b.reserve(MODEL, 1, soon())
    ticket = b.submit(admitted, [4])
    fake.gate.set()
    assert await ticket.future == [8]
    b.stop(1)


async def test_stop_timeout_fails_what_is_still_queued() -> None:
    fake = FakeModel()
    b = await occupied(fake)
    queued = submit(b, [1])
    await asyncio.to_thread(b.stop, 0.1)
    with pytest.raises(Draining):
        await queued.future
    fake.gate.set()


def _refuses(b: Any) -> bool:
    try:
        b.release(b.reserve(MODEL, 1, soon()))
    except Draining:
        return True
    return False
