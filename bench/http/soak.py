"""Soak: a burst of large images, then steady traffic; reports resident memory and p99 drift.

    python -m bench.http.soak --minutes 3 --concurrency 4            # make soak
    python -m bench.http.soak --burst-only --burst 8 --side 7000     # docs/operations.md, memory

Spawns ``sanet-serve`` (SANet-50, defaults plus ``--config`` settings). Memory: RSS after
load, the peak while ``--burst`` PNGs of ``--side`` x ``--side`` pixels are classified at once,
and RSS 10 s after the burst (target: within 1.25x of after-load). Then ``--minutes`` of
closed-loop JPEG traffic in one-minute windows: p99 and RSS per window; drift is the last
window against the first.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from bench.proctree import rss_mb
from bench.server import setting, spawned
from testing.paths import SAMPLES
from testing.servers import sanet_serve_command

SAMPLE = SAMPLES / "coffee.jpg"


def _server_pid(url: str) -> int:
    port = url.rsplit(":", 1)[1]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "environ").read_bytes()
            except OSError:
                continue
            if f"SANET_PORT={port}".encode() in cmd:
                return int(proc.name)
    raise RuntimeError("server process not found")


def _large_png(side: int, seed: int) -> bytes:
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    rgb = np.stack([np.add.outer(ramp, ramp * 0.5 + seed) % 256] * 3, axis=-1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def burst(url: str, pid: int, n: int, side: int) -> dict[str, float]:
    """RSS after load, peak during ``n`` concurrent large PNGs, and 10 s after."""
    bodies = [_large_png(side, i) for i in range(n)]
    after_load = rss_mb(pid)
    peak, done = after_load, threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    with ThreadPoolExecutor(n) as pool, httpx.Client(base_url=url, timeout=300) as client:
        statuses = list(pool.map(lambda b: _post(client, b, "image/png"), bodies))
    done.set()
    sampler.join()
    time.sleep(10)  # the target is stated at 10 s after the burst
    after = rss_mb(pid)
    print(f"burst: {n} x {side}x{side} PNG, statuses {sorted(set(statuses))}")
    print(f"RSS MB: after load {after_load:.0f}, peak {peak:.0f}, 10 s after {after:.0f}")
    print(f"after / after-load = {after / after_load:.2f} (target <= 1.25)")
    return {"after_load": after_load, "peak": peak, "after": after}


def _post(client: httpx.Client, body: bytes, ctype: str) -> int:
    # a long deadline: the burst measures memory, not how long large decodes queue
    headers = {"Content-Type": ctype, "X-Request-Timeout-Ms": "300000"}
    return client.post("/classify", content=body, headers=headers).status_code


def steady(url: str, pid: int, minutes: int, concurrency: int) -> None:
    """Closed-loop traffic in one-minute windows: p99 and RSS each."""
    body = SAMPLE.read_bytes()
    windows: list[tuple[float, float]] = []
    for _ in range(minutes):
        latencies = _window(url, body, concurrency, 60)
        p99 = statistics.quantiles(latencies, n=100)[98] * 1000 if len(latencies) > 1 else 0.0
        windows.append((p99, rss_mb(pid)))
        n, rss = len(latencies), windows[-1][1]
        print(f"window {len(windows)}: {n} ok, p99 {p99:.1f} ms, RSS {rss:.0f} MB")
    if len(windows) > 1:
        (p0, r0), (p1, r1) = windows[0], windows[-1]
        print(f"drift: p99 {p1 / p0:.2f}x, RSS {r1 - r0:+.0f} MB ({r1 / r0:.2f}x)")


def _window(url: str, body: bytes, concurrency: int, seconds: float) -> list[float]:
    ends, latencies = time.monotonic() + seconds, []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while time.monotonic() < ends:
                t0 = time.perf_counter()
                if _post(client, body, "image/jpeg") == 200:
                    latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--burst", type=int, default=8)
    parser.add_argument("--side", type=int, default=7000)
    parser.add_argument("--burst-only", action="store_true")
    parser.add_argument("--config", action="append", default=[], help="SANET_X=value")
    args = parser.parse_args()
    env = dict(setting(pair) for pair in args.config)
    env.setdefault("SANET_MAX_BODY_BYTES", str(64 * 2**20))
    with spawned(sanet_serve_command(), env, ready_timeout=600) as url:
        pid = _server_pid(url)
        burst(url, pid, args.burst, args.side)
        if not args.burst_only:
            steady(url, pid, args.minutes, args.concurrency)


if __name__ == "__main__":
    main()
