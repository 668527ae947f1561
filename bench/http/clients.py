"""Several client processes for one load level, and the server's CPU time per image.

One Python client process tops out near a few thousand small requests/s; ``--processes N``
splits a level across N processes (closed loop: the concurrency; open loop: the rate) so
the client is never the bottleneck. Each process warms up, waits at a barrier with the
parent, measures ``--duration`` seconds and sends back its tally; the parent merges them.
The server's CPU seconds (every process of its tree, ``bench.proctree``) are read around
each measured interval when its pid is known.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import random
import time
from collections.abc import Awaitable, Callable
from multiprocessing.synchronize import Barrier
from typing import Any, TypeVar

import httpx

from bench import proctree
from bench.http import senders
from bench.http.report import Tally

T = TypeVar("T")
START_TIMEOUT_S = 120.0  # a spawned client imports httpx and its bodies before the barrier


def shares(total: float, parts: int, whole: bool) -> list[float]:
    """``total`` split over ``parts`` (integers when ``whole``; zero shares dropped)."""
    if whole:
        base, extra = divmod(int(total), parts)
        return [float(base + (i < extra)) for i in range(parts) if base + (i < extra) > 0]
    return [total / parts] * parts


def merge(tallies: list[Tally]) -> Tally:
    """One tally of several processes' tallies."""
    merged = Tally()
    for t in tallies:
        merged.latencies_ms += t.latencies_ms
        merged.outcomes.update(t.outcomes)
        merged.sent += t.sent
        merged.ok_images += t.ok_images
        merged.dropped += t.dropped
    return merged


def server_cpu(pid: int | None) -> float | None:
    """CPU seconds used so far by the server's process tree (None without a pid)."""
    return None if pid is None else proctree.cpu_seconds(pid)


def cpu_per_image(before: float | None, after: float | None, images: int) -> float | None:
    """Server CPU seconds per successfully answered image over one interval."""
    if before is None or after is None or images <= 0:
        return None
    return (after - before) / images


def _client(job: dict[str, Any], barrier: Barrier, results: Any) -> None:
    """One client process: warm up, meet the parent at the barrier, measure, report."""

    async def go() -> tuple[Tally, float]:
        args, level = job["args"], job["level"]
        args.rng = random.Random(args.seed + job["index"])
        pool = int(level) if job["mode"] == "closed" else args.max_in_flight
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        headers = {"X-API-Key": args.api_key} if args.api_key else {}
        async with httpx.AsyncClient(limits=limits, timeout=args.timeout, headers=headers) as c:
            sender = senders.make_sender(
                c, job["base"], job["kind"], job["bodies"], job["query"], args
            )
            if args.warmup > 0:
                await senders.drive(sender, job["mode"], level, args.warmup, args)
            await asyncio.to_thread(barrier.wait, START_TIMEOUT_S)  # warm: parent reads
            await asyncio.to_thread(barrier.wait, START_TIMEOUT_S)  # parent has read: go
            start = time.perf_counter()
            tally = await senders.drive(sender, job["mode"], level, args.duration, args)
            elapsed = time.perf_counter() - start
            await senders.close_sender(sender)
            return tally, elapsed

    results.put(asyncio.run(go()))


async def run_processes(
    job: dict[str, Any], mode: str, level: float, args: Any, at_start: Callable[[], Awaitable[T]]
) -> tuple[Tally, float, T, float | None, float | None]:
    """One level over ``args.processes`` client processes (``job``: base URL, body kind,
    bodies, query): the merged tally, elapsed seconds, what ``at_start`` returned (awaited
    once every client is warm, before any measures), and the server CPU seconds around the
    measured interval."""
    ctx = mp.get_context("spawn")  # a fork would copy the parent's running event loop
    levels = shares(level, args.processes, whole=mode == "closed")
    cap = max(1, args.max_in_flight // len(levels))
    barrier, results = ctx.Barrier(len(levels) + 1), ctx.Queue()
    procs = []
    for i, share in enumerate(levels):
        job_args = _client_args(args, cap)
        one = {**job, "args": job_args, "index": i, "mode": mode, "level": share}
        procs.append(ctx.Process(target=_client, args=(one, barrier, results), daemon=True))
        procs[-1].start()
    await asyncio.to_thread(barrier.wait, START_TIMEOUT_S + args.warmup)
    started = await at_start()
    before = server_cpu(args.server_pid)
    await asyncio.to_thread(barrier.wait, START_TIMEOUT_S)
    outs = [await asyncio.to_thread(results.get) for _ in procs]
    after = server_cpu(args.server_pid)
    for proc in procs:
        proc.join()
    return merge([t for t, _ in outs]), max(e for _, e in outs), started, before, after


def _client_args(args: Any, cap: int) -> Any:
    """A picklable copy of the run's arguments for one client process."""
    copy = type(args)(**{k: v for k, v in vars(args).items() if k != "rng"})
    copy.max_in_flight = cap
    return copy
