"""Front-end capacity: HTTP + decode + crop + hand-off, with the null engine (no network).

    python -m bench.http.frontend --workers 1 2 --rounds 3 --duration 10 --concurrency 16

For each round, each ``--workers`` setting (interleaved) serves ``SANET_BACKEND=null``;
``hey`` posts coffee.jpg, then a 4032x3024 JPEG made from it, closed loop. Reports img/s,
the server tree's CPU milliseconds per image (every process, from /proc; and the front ends'
and the engine's shares), and the median
per-round ratio of each setting's img/s to the first setting's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from bench.pipeline.decode import jpeg
from bench.proctree import cpu_seconds, tree
from service.front.tree_metrics import read_process, role
from testing.hey import hey
from testing.paths import SAMPLES
from testing.servers import Spawned, sanet_serve_command

SAMPLE = SAMPLES / "coffee.jpg"


def _big_jpeg(folder: Path) -> Path:
    """coffee.jpg at 4032 x 3024 (a phone camera's size), as a file for ``hey``."""
    out = folder / "big.jpg"
    out.write_bytes(jpeg(SAMPLE, (4032, 3024)))
    return out


def _serve(workers: int, folder: Path) -> Spawned:
    env = {
        "SANET_BACKEND": "null",
        "SANET_MODELS": "sanet_tiny",
        "SANET_WORKERS": str(workers),
        "SANET_MAX_BATCH_SIZE": "32",
        "SANET_MAX_QUEUE": "256",
        "SANET_MAX_IMAGES_PER_REQUEST": "8",
        "SANET_LOG_LEVEL": "warning",
    }
    log = folder / f"server-{workers}.log"
    return Spawned(sanet_serve_command(), log, env).wait_ready(120)


def _by_role(root: int) -> dict[str, float]:
    """CPU seconds so far of the tree's supervisor, engine and front ends (summed)."""
    seconds: dict[str, float] = {"supervisor": 0.0, "engine": 0.0, "front": 0.0}
    for pid in tree(root):
        found = read_process(pid)
        if found is not None:
            seconds[role(found[0])] += found[1]
    return seconds


def _measure(server: Spawned, body: Path, concurrency: int, seconds: float) -> dict[str, float]:
    url = f"{server.url}/classify"
    hey(url, body, concurrency, seconds=min(2.0, seconds))  # warm-up
    cpu0, roles0 = cpu_seconds(server.popen.pid), _by_role(server.popen.pid)
    run = hey(url, body, concurrency, seconds=seconds)
    cpu = cpu_seconds(server.popen.pid) - cpu0
    roles = {k: v - roles0[k] for k, v in _by_role(server.popen.pid).items()}
    ok = run.count(200)
    per_img = {f"{k}_ms": 1000 * v / ok if ok else float("nan") for k, v in roles.items()}
    return {
        "img_s": run.rate(200),
        "cpu_ms_per_img": 1000 * cpu / ok if ok else float("nan"),
        **per_img,
        "non_200": len(run.statuses) - ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sanet-frontend-"))
    images = {"coffee.jpg": SAMPLE, "4032x3024.jpg": _big_jpeg(folder)}
    rows: dict[tuple[int, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for workers in args.workers:
            server = _serve(workers, folder)
            try:
                for name, body in images.items():
                    m = _measure(server, body, args.concurrency, args.duration)
                    rows.setdefault((workers, name), []).append(m)
            finally:
                server.stop()
    _report(rows, args.workers, list(images), args.out)


def _report(
    rows: dict[tuple[int, str], list[dict[str, float]]],
    workers: list[int],
    images: list[str],
    out: Path | None,
) -> None:
    print("| front ends | image | img/s | server CPU ms/img | front / engine ms | x first |")
    print("|---|---|---|---|---|---|")
    summary = []
    for name in images:
        base = rows[(workers[0], name)]
        for w in workers:
            runs = rows[(w, name)]
            ratio = statistics.median(
                r["img_s"] / b["img_s"] for r, b in zip(runs, base, strict=True)
            )
            img_s = statistics.median(r["img_s"] for r in runs)
            cpu = statistics.median(r["cpu_ms_per_img"] for r in runs)
            front = statistics.median(r["front_ms"] for r in runs)
            engine = statistics.median(r["engine_ms"] for r in runs)
            print(f"| {w} | {name} | {img_s:.1f} | {cpu:.2f} | {front:.2f} / {engine:.2f} "
                  f"| {ratio:.2f} |")  # fmt: skip
            summary.append({"workers": w, "image": name, "img_s": img_s, "cpu_ms": cpu,
                            "front_ms": front, "engine_ms": engine, "ratio": ratio})  # fmt: skip
    if out is not None:
        out.write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
