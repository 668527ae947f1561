"""The batcher with fake inference functions: policy, admission, and that every ticket settles."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

import pytest

from service.errors import ClientClosed, DeadlineExceeded, QueueFull
from testing.batching import MODEL, FakeModel, make, occupied, soon, submit
from testing.waiting import poll


async def test_idle_worker_dispatches_at_once() -> None:
    fake = FakeModel()
    b = make(fake, max_delay_s=5.0)
    t0 = time.monotonic()
    assert await submit(b, [21]).future == [42]
    assert time.monotonic() - t0 < 4.0  # did not linger for max_delay
    b.stop(1)


async def test_requests_accumulate_while_busy_up_to_max_batch() -> None:
    fake = FakeModel()
    b = make(fake, max_batch_size=4)
    fake.hold()
    first = submit(b, [0])
    await fake.busy()
    rest = [submit(b, [i]) for i in range(1, 7)]
    assert b.depth(MODEL) == 6
    fake.gate.set()
    await asyncio.gather(first.future, *(t.future for t in rest))
    assert fake.batches == [[0], [1, 2, 3, 4], [5, 6]]
    b.stop(1)


async def test_partial_batch_after_busy_waits_for_company_until_max_delay() -> None:
    fake = FakeModel()
    b = make(fake, max_batch_size=8, max_delay_s=0.3)
    fake.hold()
    first = submit(b, [0])
    await fake.busy()
    t_b = time.monotonic()
    tb = submit(b, [1])
    fake.gate.set()  # the worker comes back busy: it lingers for company
    await first.future
    tc = submit(b, [2])
    await asyncio.gather(tb.future, tc.future)
    assert fake.batches[1] == [1, 2]
    assert fake.dispatched_at[1] - t_b >= 0.3  # not before the oldest waited max_delay
    b.stop(1)


async def test_multi_item_ticket_is_answered_in_order_across_batches() -> None:
    fake = FakeModel()
    b = make(fake, max_batch_size=2)
    assert await submit(b, [1, 2, 3, 4, 5]).future == [2, 4, 6, 8, 10]
    assert all(len(x) <= 2 for x in fake.batches)
    b.stop(1)


async def test_queue_full_is_refused_at_admission_and_reservations_count() -> None:
    fake = FakeModel()
    b = await occupied(fake, max_queue=3)
    ok = submit(b, [1, 2])
    with pytest.raises(QueueFull):
        submit(b, [3, 4])  # all-or-nothing: 2 + 2 > 3
    held = b.reserve(MODEL, 1, soon())  # admitted, still decoding its image
    with pytest.raises(QueueFull):
        b.reserve(MODEL, 1, soon())
    fake.gate.set()
    assert await ok.future == [2, 4]
    assert await b.submit(held, [3]).future == [6]
    b.stop(1)


async def test_a_reservation_grows_only_into_free_room_and_is_released() -> None:
    fake = FakeModel()
    b = await occupied(fake, max_queue=4)
    res = b.reserve(MODEL, 1, soon())
    b.resize(res, 4)
    with pytest.raises(QueueFull):
        b.resize(res, 5)
    with pytest.raises(QueueFull):
        b.reserve(MODEL, 1, soon())
    b.release(res)
    b.release(res)  # idempotent
    after = submit(b, [1, 2, 3, 4])  # the room came back
    fake.gate.set()
    assert await after.future == [2, 4, 6, 8]
    b.stop(1)


async def test_deadline_in_queue_fails_and_is_never_computed() -> None:
    fake = FakeModel()
    b = await occupied(fake)
    late = submit(b, [7], time.monotonic() + 0.1)
    with pytest.raises(DeadlineExceeded):
        await late.future  # while the worker is still held
    assert b.depth(MODEL) == 0
    fake.gate.set()
    assert await submit(b, [1]).future == [2]
    assert [7] not in fake.batches
    with pytest.raises(DeadlineExceeded):
        submit(b, [1], time.monotonic() - 1)
    b.stop(1)


async def test_cancelled_ticket_is_dropped_before_the_model() -> None:
    fake = FakeModel()
    b = await occupied(fake)
    gone = submit(b, [9])
    b.cancel(gone)
    with pytest.raises(ClientClosed):
        await gone.future
    fake.gate.set()
    assert await submit(b, [1]).future == [2]
    assert all(9 not in batch for batch in fake.batches)
    b.stop(1)


async def test_models_on_one_device_share_the_worker_oldest_first() -> None:
    fake = FakeModel()
    order: list[str] = []

    def model_a(p: list[int]) -> Sequence[int]:
        order.append("a")
        return fake(p)

    def model_c(p: list[int]) -> Sequence[int]:
        order.append("c")
        return [x * 3 for x in p]

    b = make(model_a, max_batch_size=8)
    b.add_model("c", model_c)
    fake.hold()
    submit(b, [0])
    await fake.busy()
    tc = submit(b, [1], model="c")
    ta = submit(b, [1])
    fake.gate.set()
    assert await tc.future == [3]
    assert await ta.future == [2]
    assert order == ["a", "c", "a"]  # c's request is older than a's second one
    assert b.alive
    b.stop(1)


async def test_every_ticket_gets_its_own_results_under_load() -> None:
    b = make(lambda p: [x * 2 for x in p], max_batch_size=8, max_queue=10_000)
    rng = random.Random(0)
    sizes = [rng.randint(1, 5) for _ in range(300)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    spans = list(zip(starts, sizes, strict=True))
    tickets = [submit(b, list(range(s, s + n))) for s, n in spans]
    results = await asyncio.gather(*(t.future for t in tickets))
    for s, n, r in zip(starts, sizes, results, strict=True):
        assert r == [2 * x for x in range(s, s + n)]
    b.stop(1)


async def test_idle_hook_runs_once_per_busy_spell_without_the_lock() -> None:
    calls: list[int] = []
    fake = FakeModel()

    def hook() -> None:  # admissions must go on while it runs
        calls.append(b.reserve(MODEL, 1, soon()).n)

    b = make(fake, on_idle=hook, idle_s=0.05)
    await asyncio.sleep(0.2)
    assert calls == []  # idle from the start: nothing to give back yet
    assert await submit(b, [1]).future == [2]
    await asyncio.to_thread(poll, lambda: len(calls) == 1, 5, "the idle hook")
    await asyncio.sleep(0.2)
    assert len(calls) == 1  # once per spell of work, not every idle_s
    assert await submit(b, [2]).future == [4]
    await asyncio.to_thread(poll, lambda: len(calls) == 2, 5, "the idle hook again")
    b.stop(1)
