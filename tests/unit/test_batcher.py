"""The batcher with fake inference functions: its policy, and that every ticket settles."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from service.errors import DeadlineExceeded
from testing.batching import MODEL, WAIT_S, FakeModel, Harness, answer, occupied

Make = Callable[..., Harness]


async def test_idle_worker_dispatches_at_once(batcher: Make) -> None:
    h = batcher(FakeModel(), max_delay_s=3600)  # a linger would outlast the bounded wait
    assert await answer(h.submit([21])) == [42]


async def test_requests_accumulate_while_busy_up_to_max_batch(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake, max_batch_size=4)
    first = await occupied(h, fake)
    rest = [h.submit([i]) for i in range(1, 7)]
    assert h.batcher.depth(MODEL) == 6
    fake.gate.set()
    await answer(asyncio.gather(first, *rest))
    assert fake.batches == [[0], [1, 2, 3, 4], [5, 6]]


async def test_partial_batch_after_busy_waits_for_company(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake, max_batch_size=3, max_delay_s=3600)
    first = await occupied(h, fake)
    lone = h.submit([1])
    fake.gate.set()  # the worker comes back busy: it lingers for company
    await answer(first)
    company = [h.submit([2]), h.submit([3])]  # the batch fills: dispatched at once
    assert await answer(asyncio.gather(lone, *company)) == [[2], [4], [6]]
    assert fake.batches[1] == [1, 2, 3]


async def test_a_lingering_batch_goes_once_its_oldest_waited_max_delay(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake, max_batch_size=8, max_delay_s=0.05)
    first = await occupied(h, fake)
    lone = h.submit([1])
    fake.gate.set()
    assert await answer(lone, "the partial batch after max_delay") == [2]
    await answer(first)
    assert fake.batches[1] == [1]


async def test_multi_item_ticket_is_one_block_in_order_across_batches(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake, max_batch_size=2)
    assert await answer(h.submit([1, 2, 3, 4, 5])) == [2, 4, 6, 8, 10]
    assert all(len(x) <= 2 for x in fake.batches)


async def test_deadline_passed_when_the_batch_forms_is_never_computed(batcher: Make) -> None:
    fake = FakeModel()
    h = batcher(fake)
    first = await occupied(h, fake)
    late = h.submit([7], deadline=time.monotonic() - 1)
    fake.gate.set()
    with pytest.raises(DeadlineExceeded):
        await answer(late)
    await answer(first)
    assert await answer(h.submit([1])) == [2]
    assert [7] not in fake.batches


async def test_cancelled_ticket_is_dropped_before_the_model_and_not_answered(
    batcher: Make,
) -> None:
    fake = FakeModel()
    h = batcher(fake)
    first = await occupied(h, fake)
    gone = h.submit([9])
    h.cancel(gone)
    assert h.batcher.depth(MODEL) == 0
    fake.gate.set()
    await answer(first)
    assert await answer(h.submit([1])) == [2]  # answered after the cancel: it was dropped
    assert not gone.done()
    assert all(9 not in batch for batch in fake.batches)


async def test_models_on_one_device_share_the_worker_oldest_first(batcher: Make) -> None:
    fake = FakeModel()
    order: list[str] = []

    def model_a(p: list[int]) -> np.ndarray:
        order.append("a")
        return fake(p)

    def model_c(p: list[int]) -> np.ndarray:
        order.append("c")
        return np.asarray(p) * 3

    h = batcher(model_a, max_batch_size=8)
    h.add_model("c", model_c)
    first = await occupied(h, fake)
    tc = h.submit([1], model="c")
    ta = h.submit([1])
    fake.gate.set()
    assert await answer(asyncio.gather(first, tc, ta)) == [[0], [3], [2]]
    assert order == ["a", "c", "a"]  # c's request is older than a's second one
    assert h.batcher.alive


async def test_every_ticket_gets_its_own_rows_under_load(batcher: Make) -> None:
    h = batcher(lambda p: np.asarray(p) * 2, max_batch_size=8)
    rng = random.Random(0)
    sizes = [rng.randint(1, 5) for _ in range(300)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    futures = [h.submit(list(range(s, s + n))) for s, n in zip(starts, sizes, strict=True)]
    results = await answer(asyncio.gather(*futures))
    for s, n, r in zip(starts, sizes, results, strict=True):
        assert r == [2 * x for x in range(s, s + n)]


async def test_idle_hook_runs_once_per_spell_of_work_without_the_lock(batcher: Make) -> None:
    fake = FakeModel()
    seen: list[int] = []  # how many batches had run at each call
    called = threading.Semaphore(0)
    holder: dict[str, Any] = {}

    def hook() -> None:
        seen.append(len(fake.batches))
        if len(seen) == 1:  # a submit takes the lock: the hook runs without it
            holder["again"] = holder["h"].batcher.submit(MODEL, [5], time.monotonic() + 60)
        called.release()

    h = holder["h"] = batcher(fake, on_idle=hook, idle_s=0.01)
    assert await answer(h.submit([1])) == [2]
    for spell in (1, 2):
        if not await asyncio.to_thread(called.acquire, True, WAIT_S):
            raise AssertionError(f"the idle hook after spell {spell} never ran")
    assert seen == [1, 2]  # not at the start (no work yet), once after each spell
    assert holder["again"].output.tolist() == [10]
