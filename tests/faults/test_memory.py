"""Memory of the process tree.

- After a burst of large images, scaled down: four 5000x5000 PNGs into a real SANet-50 tree;
  the front end that decoded them (where images become pixels) must come back to within
  1.25x of its post-load resident anonymous memory (without the decode gate and the trim a
  single process stayed at 436 -> 1,266 MB).
- After load, SANet-50 fp32 on the CPU (OpenVINO, one front end): each process's share
  (PSS) is in /metrics, and the tree holds at most 650 MB.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from service.front.tree_metrics import tree_pids
from testing.metrics import sample
from testing.paths import SAMPLES
from testing.servers import Spawned, sanet_serve_command
from testing.waiting import poll

SIDE, BURST = 5000, 4
TREE_MB = 650
ROLES = ("supervisor", "engine", "front")


def _rss_mb(pid: int) -> float:
    """Resident anonymous memory (heap, arenas, mmapped buffers): where images' pixels live.
    File pages (libraries the first requests touch) are shared and do not count."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no RssAnon")


def _png(seed: int) -> bytes:
    ramp = np.linspace(0, 255, SIDE, dtype=np.float32)
    grey = (np.add.outer(ramp, ramp * 0.5 + seed) % 256).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _front_end(root: int) -> int:
    """The pid of the tree's one front end."""
    names = {p: Path(f"/proc/{p}/comm").read_text().strip() for p in tree_pids(root)}
    fronts = [p for p, name in names.items() if name.startswith("sanet-front")]
    assert len(fronts) == 1, names
    return fronts[0]


def test_memory_returns_after_a_burst_of_large_images(tmp_path: Path) -> None:
    cmd = [
        *sanet_serve_command(), "--models", "sanet50", "--backend",
        "torchscript", "--device", "cpu", "--max-body-bytes", str(64 * 2**20),
        "--timeout-ms", "300000", "--preprocess-workers", "4", "--workers", "1",
    ]  # fmt: skip
    bodies = [_png(i) for i in range(BURST)]
    proc = Spawned(cmd, tmp_path / "server.log")
    try:
        proc.wait_ready()
        pid = _front_end(proc.popen.pid)
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


def test_each_process_share_of_memory_is_in_metrics(tmp_path: Path) -> None:
    cmd = [
        *sanet_serve_command(), "--models", "sanet50", "--backend", "openvino",
        "--device", "cpu", "--workers", "1",
    ]  # fmt: skip
    proc = Spawned(cmd, tmp_path / "server.log")
    try:
        proc.wait_ready(300)
        body, headers = (SAMPLES / "coffee.jpg").read_bytes(), {"Content-Type": "image/jpeg"}
        for _ in range(16):
            assert proc.client.post("/classify", content=body, headers=headers).status_code == 200
        text = proc.client.get("/metrics").text
        shares = {r: sample(text, "process_pss_bytes", role=r) / 2**20 for r in ROLES}
        assert all(mb > 0 for mb in shares.values()), shares
        assert sum(shares.values()) <= TREE_MB, shares
    finally:
        proc.stop(grace=10)
