"""Which autoscaling signal tracks p99 latency? Each candidate at every load level.

One spawned ``sanet-serve`` is driven closed loop (``--concurrency``) and open loop (``--rate``)
like ``bench.http.load``; around every level ``/metrics`` is read twice, and the level records the
client's p99 beside each candidate signal over the same interval:

- utilisation: rate of ``sanet_inference_busy_seconds_total`` (summed over models), 0..1;
- queue wait: mean and p99 of ``sanet_queue_wait_seconds``;
- queue saturation: the highest ``sanet_queue_saturation`` sampled each second (the old HPA's).

    python -m bench.http.signal --model sanet50 --concurrency 1 2 4 8 --rate-fractions 0.2 0.5 0.8 1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.common import RESULTS, machine, markdown_table, write_json
from bench.http import report
from bench.http.bodies import encode_bodies
from bench.http.load import run_async
from bench.http.senders import Sender, closed_loop, open_loop
from bench.server import parse_config, spawned
from testing import metrics
from testing.paths import SAMPLES
from testing.servers import sanet_serve_command

log = logging.getLogger("bench.http.signal")
HEADERS = [
    "loop", "level", "img/s", "p50 ms", "p99 ms", "utilisation", "queue wait mean ms",
    "queue wait p99 ms", "queue saturation", "mean batch",
]  # fmt: skip


def counters(text: str) -> dict[str, Any]:
    """Busy seconds, queue-wait sum/count/buckets, batch sum/count, saturation of a scrape."""
    wait = metrics.histogram(text, "sanet_queue_wait_seconds")
    return {
        "busy": metrics.sample(text, "sanet_inference_busy_seconds_total"),
        "qw_sum": wait["sum"],
        "qw_count": wait["count"],
        "qw_buckets": wait["buckets"],
        "batch_sum": metrics.sample(text, "sanet_batch_size_sum"),
        "batch_count": metrics.sample(text, "sanet_batch_size_count"),
        "saturation": metrics.maximum(text, "sanet_queue_saturation"),
    }


def bucket_quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float:
    """Prometheus' histogram_quantile over the bucket increase (linear within a bucket)."""
    edges = sorted(after)
    counts = [after[le] - before.get(le, 0.0) for le in edges]
    if not counts or counts[-1] <= 0:
        return float("nan")
    rank, lower, below = q * counts[-1], 0.0, 0.0
    for le, count in zip(edges, counts, strict=True):
        if count >= rank:
            if le == float("inf"):
                return lower
            return lower + (le - lower) * (rank - below) / max(count - below, 1e-12)
        lower, below = le, count
    return lower


def signals(before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    """The candidate signals between two scrapes ``seconds`` apart."""
    waits = after["qw_count"] - before["qw_count"]
    batches = after["batch_count"] - before["batch_count"]
    return {
        "utilisation": (after["busy"] - before["busy"]) / seconds,
        "queue_wait_mean_ms": 1000 * (after["qw_sum"] - before["qw_sum"]) / waits
        if waits
        else None,
        "queue_wait_p99_ms": 1000
        * bucket_quantile(0.99, before["qw_buckets"], after["qw_buckets"]),
        "queue_saturation": after["saturation"],
        "mean_batch": (after["batch_sum"] - before["batch_sum"]) / batches if batches else None,
    }


async def sample_saturation(client: httpx.AsyncClient, base: str, stop: asyncio.Event) -> float:
    """Highest ``sanet_queue_saturation`` seen once a second until ``stop`` (a gauge: it
    must be read while the load runs, not after the queue drained)."""
    highest = 0.0
    while not stop.is_set():
        highest = max(highest, counters((await client.get(f"{base}/metrics")).text)["saturation"])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
    return highest


async def level(sender: Sender, base: str, mode: str, value: float, args: Any) -> dict:
    """Warm up, then one measured level with a scrape on either side."""
    if mode == "closed":
        await closed_loop(sender, int(value), args.warmup, args.max_requests)
    before = counters((await sender.client.get(f"{base}/metrics")).text)
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_saturation(sender.client, base, stop))
    t0 = time.perf_counter()
    if mode == "closed":
        tally = await closed_loop(sender, int(value), args.duration, args.max_requests)
    else:
        rng = random.Random(args.seed)
        tally = await open_loop(sender, value, args.duration, args.max_requests, 256, rng)
    elapsed = time.perf_counter() - t0
    stop.set()
    after = counters((await sender.client.get(f"{base}/metrics")).text)
    run = {"mode": mode, "level": value, **report.summarize(tally, elapsed)}
    run["signals"] = signals(before, after, elapsed) | {"queue_saturation": await sampler}
    log.info("%s %g: p99 %s ms, %s", mode, value, run["latency_ms"]["p99"], run["signals"])
    return run


async def measure(base: str, args: Any) -> list[dict]:
    photos = [p.read_bytes() for p in args.images]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        url = f"{base}/classify?model={args.model}&top_k=1"
        sender = Sender(client, url, encode_bodies(photos, "raw"), 60)
        runs = [await level(sender, base, "closed", c, args) for c in args.concurrency]
        rates = list(args.rate)
        if args.rate_fractions:  # of the capacity: the highest closed-loop throughput
            capacity = max(r["images_per_s"] for r in runs)
            rates += [round(f * capacity, 2) for f in args.rate_fractions]
        return runs + [await level(sender, base, "open", r, args) for r in rates]


def rows(runs: Sequence[dict]) -> list[list[object]]:
    def f(v: float | None, fmt: str = ".1f") -> str:
        return "-" if v is None or v != v else format(v, fmt)

    return [
        [
            r["mode"], report.level_name(r), f(r["images_per_s"]), f(r["latency_ms"]["p50"]),
            f(r["latency_ms"]["p99"]), f(r["signals"]["utilisation"], ".2f"),
            f(r["signals"]["queue_wait_mean_ms"]), f(r["signals"]["queue_wait_p99_ms"]),
            f(r["signals"]["queue_saturation"], ".3f"), f(r["signals"]["mean_batch"], ".2f"),
        ]
        for r in runs
    ]  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="sanet50")
    p.add_argument("--config", default="default", metavar="LABEL[:K=V,...]")
    p.add_argument("--images", nargs="+", type=Path, default=[SAMPLES / "coffee.jpg"])
    p.add_argument("--concurrency", nargs="*", type=int, default=[1, 2, 4, 8, 12, 16])
    p.add_argument("--rate", nargs="*", type=float, default=[])
    p.add_argument(
        "--rate-fractions",
        nargs="*",
        type=float,
        default=[],
        help="open-loop rates as fractions of the closed-loop capacity",
    )
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--max-requests", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="signal.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    label, env = parse_config(args.config)
    with spawned(sanet_serve_command(), {"SANET_MODELS": args.model, **env}, 300) as base:
        runs = run_async(measure(base, args))
    table = markdown_table(HEADERS, rows(runs))
    params = {k: str(v) for k, v in vars(args).items()}
    payload = {"machine": machine(), "config": label, "params": params, "runs": runs}
    write_json(args.out, {**payload, "table": table})
    print(table)
    log.info("wrote %s", RESULTS / args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
