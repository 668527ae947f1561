"""The batcher with fake inference functions: policy, shedding, and that every ticket settles."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from service.batcher import (
    Batcher,
    Cancelled,
    DeadlineExceeded,
    InferenceWorker,
    QueueFull,
)


class FakeModel:
    """Doubles its inputs; records batches; can be held at a gate to keep the worker busy."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []
        self.dispatched_at: list[float] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, payloads: list[Any]) -> Sequence[Any]:
        self.batches.append(list(payloads))
        self.dispatched_at.append(time.monotonic())
        self.entered.set()
        assert self.gate.wait(10)
        return [p * 2 for p in payloads]

    def hold(self) -> None:
        self.gate.clear()
        self.entered.clear()

    async def busy(self) -> None:
        """Wait until the worker sits inside a held batch."""
        assert await asyncio.to_thread(self.entered.wait, 5)


def make(fake: Any, **kw: Any) -> Batcher:
    opts: dict[str, Any] = {"max_batch_size": 4, "max_delay_s": 0.0, "max_queue": 64}
    opts.update(kw)
    b = Batcher("m", fake, **opts)
    b.start()
    return b


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


async def occupied(fake: FakeModel, **kw: Any) -> Batcher:
    """A started batcher whose worker sits inside a held batch (the payload 0)."""
    b = make(fake, **kw)
    fake.hold()
    b.submit([0], soon())
    await fake.busy()
    return b


def test_idle_worker_dispatches_at_once() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = make(fake, max_delay_s=5.0)
        t0 = time.monotonic()
        assert await b.submit([21], soon()).future == [42]
        assert time.monotonic() - t0 < 1.0  # did not linger for max_delay
        b.stop(1)

    asyncio.run(main())


def test_requests_accumulate_while_busy_up_to_max_batch() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = make(fake, max_batch_size=4)
        fake.hold()
        first = b.submit([0], soon())
        await fake.busy()
        rest = [b.submit([i], soon()) for i in range(1, 7)]
        assert b.depth == 6
        fake.gate.set()
        await asyncio.gather(first.future, *(t.future for t in rest))
        assert fake.batches == [[0], [1, 2, 3, 4], [5, 6]]
        b.stop(1)

    asyncio.run(main())


def test_partial_batch_after_busy_waits_at_most_max_delay() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = await occupied(fake, max_batch_size=8, max_delay_s=0.3)
        t_b = time.monotonic()
        tb = b.submit([1], soon())
        fake.gate.set()  # worker comes back busy: lingers for company
        await asyncio.sleep(0.1)
        tc = b.submit([2], soon())
        await asyncio.gather(tb.future, tc.future)
        assert fake.batches[1] == [1, 2]
        waited = fake.dispatched_at[1] - t_b
        assert 0.2 < waited < 1.0
        b.stop(1)

    asyncio.run(main())


def test_multi_item_ticket_is_answered_in_order_across_batches() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = make(fake, max_batch_size=2)
        assert await b.submit([1, 2, 3, 4, 5], soon()).future == [2, 4, 6, 8, 10]
        assert all(len(x) <= 2 for x in fake.batches)
        b.stop(1)

    asyncio.run(main())


def test_queue_full_is_refused_at_admission() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = await occupied(fake, max_queue=3)
        ok = b.submit([1, 2], soon())
        with pytest.raises(QueueFull):
            b.submit([3, 4], soon())  # all-or-nothing: 2 + 2 > 3
        ok2 = b.submit([3], soon())
        fake.gate.set()
        assert await ok.future == [2, 4]
        assert await ok2.future == [6]
        b.stop(1)

    asyncio.run(main())


def test_deadline_in_queue_fails_promptly_and_is_never_computed() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = await occupied(fake)
        t0 = time.monotonic()
        late = b.submit([7], time.monotonic() + 0.1)
        with pytest.raises(DeadlineExceeded):
            await late.future
        assert time.monotonic() - t0 < 1.0  # while the worker is still busy
        assert b.depth == 0
        fake.gate.set()
        assert await b.submit([1], soon()).future == [2]
        assert [7] not in fake.batches
        with pytest.raises(DeadlineExceeded):
            b.submit([1], time.monotonic() - 1)
        b.stop(1)

    asyncio.run(main())


def test_cancelled_ticket_is_dropped_before_the_model() -> None:
    async def main() -> None:
        fake = FakeModel()
        b = await occupied(fake)
        gone = b.submit([9], soon())
        b.cancel(gone)
        with pytest.raises(Cancelled):
            await gone.future
        fake.gate.set()
        assert await b.submit([1], soon()).future == [2]
        assert all(9 not in batch for batch in fake.batches)
        b.stop(1)

    asyncio.run(main())


def test_models_on_one_device_share_the_worker_oldest_first() -> None:
    async def main() -> None:
        fake = FakeModel()
        worker = InferenceWorker("dev")
        a = Batcher("a", fake, max_batch_size=8, max_delay_s=0, max_queue=8, worker=worker)
        c = Batcher(
            "c",
            lambda p: [x * 3 for x in p],
            max_batch_size=8,
            max_delay_s=0,
            max_queue=8,
            worker=worker,
        )
        worker.start()
        fake.hold()
        a.submit([0], soon())
        await fake.busy()
        tc = c.submit([1], soon())
        ta = a.submit([1], soon())
        fake.gate.set()
        assert await tc.future == [3]
        assert await ta.future == [2]
        assert a.alive and c.alive
        worker.stop(1)

    asyncio.run(main())


def test_every_ticket_gets_its_own_results_under_load() -> None:
    async def main() -> None:
        b = make(lambda p: [x * 2 for x in p], max_batch_size=8, max_queue=10_000)
        rng = random.Random(0)
        sizes = [rng.randint(1, 5) for _ in range(300)]
        starts = [sum(sizes[:i]) for i in range(len(sizes))]
        spans = list(zip(starts, sizes, strict=True))
        tickets = [b.submit(list(range(s, s + n)), soon()) for s, n in spans]
        results = await asyncio.gather(*(t.future for t in tickets))
        for s, n, r in zip(starts, sizes, results, strict=True):
            assert r == [2 * x for x in range(s, s + n)]
        b.stop(1)

    asyncio.run(main())
