"""Memory after a burst of large images, scaled down: two bursts of four 5000x5000 PNGs
into a real SANet-50 process; its resident memory must come back to within 1.25x of its
post-load value (without the decode gate and the trim it stayed at 436 -> 1,266 MB). Loading
SANet-50 is what raises glibc's mmap threshold (a tiny model does not show it)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

SIDE, BURST = 5000, 4


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _png(seed: int) -> bytes:
    ramp = np.linspace(0, 255, SIDE, dtype=np.float32)
    grey = (np.add.outer(ramp, ramp * 0.5 + seed) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def test_memory_returns_after_a_burst_of_large_images(tmp_path: Path) -> None:
    cmd = [
        *sanet_serve_command(), "--models", "sanet50", "--backend",
        "torchscript", "--device", "cpu", "--max-body-bytes", str(64 * 2**20),
        "--timeout-ms", "300000", "--preprocess-workers", "4",
    ]  # fmt: skip
    bodies = [_png(i) for i in range(BURST)]
    proc = Spawned(cmd, tmp_path / "server.log")
    try:
        proc.wait_ready()
        pid = proc.popen.pid
        after_load = _rss_mb(pid)
        with ThreadPoolExecutor(BURST) as pool, httpx.Client(base_url=proc.url, timeout=300) as c:
            headers = {"Content-Type": "image/png"}
            answers = list(
                pool.map(lambda b: c.post("/classify", content=b, headers=headers), bodies)
            )
        assert [a.status_code for a in answers] == [200] * BURST
        poll(
            lambda: _rss_mb(pid) <= 1.25 * after_load,
            10,
            f"RSS back within 1.25x of {after_load:.0f} MB (now {_rss_mb(pid):.0f} MB)",
            every=0.2,
        )
    finally:
        proc.stop(grace=10)
