"""The batcher's failure paths with fake inference functions: every ticket settles."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from service.batcher import BatchFailed, Draining, OutputMismatch, WorkerUnavailable
from tests.unit.test_batcher import FakeModel, make, occupied, soon


def test_exception_fails_the_whole_batch_and_the_worker_keeps_serving() -> None:
    calls = {"n": 0}

    def flaky(payloads: list[Any]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("secret internals")
        return [p * 2 for p in payloads]

    async def main() -> None:
        gate = FakeModel()
        gate.hold()

        def fn(payloads: list[Any]) -> Sequence[Any]:
            if calls["n"] == 0:
                gate(payloads)
            return flaky(payloads)

        b = make(fn)
        first = b.submit([0], soon())
        await gate.busy()
        batch = [b.submit([i], soon()) for i in (1, 2, 3)]
        gate.gate.set()
        assert await first.future == [0]
        for t in batch:
            with pytest.raises(BatchFailed) as info:
                await t.future
            assert isinstance(info.value.__cause__, RuntimeError)
        assert b.alive
        assert await b.submit([5], soon()).future == [10]
        b.stop(1)

    asyncio.run(main())


def test_output_count_mismatch_is_a_typed_error() -> None:
    async def main() -> None:
        b = make(lambda payloads: payloads[:-1])
        with pytest.raises(OutputMismatch):
            await b.submit([1, 2], soon()).future
        b.stop(1)

    asyncio.run(main())


class Fatal(BaseException):
    """Escapes ``except Exception``: stands for whatever could kill the thread."""


def test_worker_death_settles_everything_and_reports_not_alive() -> None:
    async def main() -> None:
        fake = FakeModel()

        def fn(payloads: list[Any]) -> Sequence[Any]:
            fake(payloads)
            raise Fatal

        b = make(fn)
        fake.hold()
        inflight = b.submit([1], soon())
        await fake.busy()
        queued = b.submit([2], soon())
        fake.gate.set()
        with pytest.raises(BatchFailed):
            await inflight.future
        with pytest.raises(WorkerUnavailable):
            await queued.future
        assert not b.alive
        with pytest.raises(WorkerUnavailable):
            b.submit([3], soon())

    asyncio.run(main())


def test_stop_drains_queued_work_then_refuses() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = make(fake, max_batch_size=2)
        fake.hold()
        tickets = [b.submit([i], soon()) for i in range(5)]
        await fake.busy()
        threading.Timer(0.1, fake.gate.set).start()
        await asyncio.to_thread(b.stop, 5)
        assert [await t.future for t in tickets] == [[0], [2], [4], [6], [8]]
        with pytest.raises(Draining):
            b.submit([1], soon())

    asyncio.run(main())


def test_stop_timeout_fails_what_is_still_queued() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = await occupied(fake)
        queued = b.submit([1], soon())
        await asyncio.to_thread(b.stop, 0.1)
        with pytest.raises(Draining):
            await queued.future
        fake.gate.set()

    asyncio.run(main())
