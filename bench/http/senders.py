"""Senders of the load generator: one request of a body kind, and the closed and open loops.

``bench.http.load`` runs them in one process, ``bench.http.clients`` in several.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable
from typing import Any

import httpx

from bench.http import v2
from bench.http.bodies import Body
from bench.http.report import Tally


class Sender:
    """Posts the pre-encoded bodies round-robin and records each outcome in a Tally."""

    def __init__(self, client: httpx.AsyncClient, url: str, bodies: list[Body], timeout: float):
        self.client, self.url, self.timeout = client, url, timeout
        self._bodies = itertools.cycle(bodies)

    async def one(self, tally: Tally) -> None:
        body = next(self._bodies)
        tally.sent += 1
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout):
                resp = await self.client.post(self.url, content=body.content, headers=body.headers)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            tally.outcomes[type(exc).__name__] += 1
            return
        tally.outcomes[str(resp.status_code)] += 1
        if resp.status_code == 200:
            tally.latencies_ms.append(1000 * (time.perf_counter() - start))
            tally.ok_images += body.images


AnySender = Sender | v2.GrpcSender  # /classify and v2 REST, or v2 gRPC


async def closed_loop(sender: AnySender, concurrency: int, seconds: float, limit: int) -> Tally:
    """``concurrency`` workers back to back until ``seconds`` pass or ``limit`` are sent."""
    tally = Tally()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < deadline and tally.sent < limit:
            await sender.one(tally)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally


async def open_loop(
    sender: AnySender, rate: float, seconds: float, limit: int, cap: int, rng: random.Random
) -> Tally:
    """Poisson arrivals at ``rate``/s for ``seconds`` (at most ``limit``), ``cap`` in flight."""
    tally = Tally()
    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    next_at, arrivals = start, 0
    while arrivals < limit:
        next_at += rng.expovariate(rate)
        if next_at - start >= seconds:
            break
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        arrivals += 1
        if len(tasks) >= cap:
            tally.dropped += 1
            continue
        task = asyncio.create_task(sender.one(tally))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*list(tasks))
    return tally


def drive(
    sender: AnySender, mode: str, level: float, seconds: float, args: Any
) -> Awaitable[Tally]:
    if mode == "closed":
        return closed_loop(sender, int(level), seconds, args.max_requests)
    return open_loop(sender, level, seconds, args.max_requests, args.max_in_flight, args.rng)


async def close_sender(sender: AnySender) -> None:
    if isinstance(sender, v2.GrpcSender):
        await sender.close()


def make_sender(
    client: httpx.AsyncClient, base: str, kind: str, bodies: list[Body], query: str, args: Any
) -> Sender | v2.GrpcSender:
    """/classify, KServe v2 REST (same port) or KServe v2 gRPC (``args.grpc``)."""
    model = args.model or "sanet50"
    if kind == "v2_grpc":
        photos = [path.read_bytes() for path in args.images]
        n, per = len(photos), args.images_per_request
        groups = [[photos[(i + j) % n] for j in range(per)] for i in range(n)]
        requests = [(v2.grpc_request(model, g, args.top_k), len(g)) for g in groups]
        return v2.GrpcSender(client, args.grpc, requests, args.timeout, args.api_key)
    if kind == "v2_http":
        return Sender(client, f"{base}/v2/models/{model}/infer", bodies, args.timeout)
    return Sender(client, f"{base}/classify?{query}", bodies, args.timeout)
