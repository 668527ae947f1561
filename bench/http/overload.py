"""Goodput under overload: closed loop at 1x, 4x and 16x the concurrency that saturates.

    python -m bench.http.overload --backend null --duration 10
    python -m bench.http.overload --backend torchscript --model sanet_tiny --duration 10
    python -m bench.http.overload --backend null --max-batch-size 8 --concurrency 16 64 256

The service runs with a small queue (``--max-queue``) so that overload turns into refusals.
First a short probe finds the saturating concurrency (the smallest that reaches 90% of the
best img/s of 1, 2, 4, ... 32); then ``hey`` runs each multiple of it for about
``--duration`` s (or each of ``--concurrency``, given outright). The peak is the best img/s
seen, probe or level.
Reports goodput (200/s) and its ratio to the peak, the server tree's CPU per good image (the
client shares the cores: a cost that holds under overload says the server holds), the share
of 503s and their p99 latency
(a refusal must be cheap and early), the p99 of the 200s, any other status, and requests
that got no answer. Targets: goodput at 16x >= 0.9x the peak, p99 of a 503 < 50 ms, no other
5xx, nothing unanswered.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bench.proctree import cpu_seconds
from testing.hey import Run, hey
from testing.paths import SAMPLES
from testing.servers import Spawned, sanet_serve_command

SAMPLE = SAMPLES / "coffee.jpg"


def _serve(args: argparse.Namespace, folder: Path) -> Spawned:
    env = {
        "SANET_BACKEND": args.backend,
        "SANET_MODELS": args.model,
        "SANET_DEVICE": "cpu",
        "SANET_WORKERS": str(args.workers),
        "SANET_MAX_BATCH_SIZE": str(args.max_batch_size),
        "SANET_MAX_QUEUE": str(args.max_queue),
        "SANET_MAX_IMAGES_PER_REQUEST": "1",
        "SANET_LOG_LEVEL": "warning",
    }
    folder.mkdir(parents=True, exist_ok=True)
    return Spawned(sanet_serve_command(), folder / "server.log", env).wait_ready(180)


def _saturating(url: str, seconds: float) -> tuple[int, float]:
    """(concurrency, img/s): the smallest concurrency within 90% of the best probed."""
    rates = {c: hey(url, SAMPLE, c, seconds=seconds).rate(200) for c in (1, 2, 4, 8, 16, 32)}
    best = max(rates.values())
    return min(c for c, r in rates.items() if r >= 0.9 * best), best


def _run(server: Spawned, c: int, n: int) -> tuple[Run, float]:
    """One hey run of ``n`` requests at ``c``, and the server tree's CPU seconds meanwhile."""
    cpu0 = cpu_seconds(server.popen.pid)
    run = hey(f"{server.url}/classify", SAMPLE, c, n=n)
    return run, cpu_seconds(server.popen.pid) - cpu0


def _row(level: str, c: int, run: Run, cpu_s: float, peak: float) -> dict[str, Any]:
    answered = len(run.statuses)
    others = sorted({s for s in run.statuses if s not in (200, 503)})
    p99_503, p99_200 = run.p(0.99, 503), run.p(0.99, 200)
    return {
        "level": level,
        "concurrency": c,
        "goodput": run.rate(200),
        "x_peak": run.rate(200) / peak if peak else 0.0,
        "cpu_ms_per_good": 1000 * cpu_s / run.count(200) if run.count(200) else None,
        "refused_share": run.count(503) / answered if answered else 0.0,
        "p99_503_ms": 1000 * p99_503 if p99_503 is not None else None,
        "p99_200_ms": 1000 * p99_200 if p99_200 is not None else None,
        "other_statuses": others,
        "unanswered": run.errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="null")
    parser.add_argument("--model", default="sanet_tiny")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-queue", type=int, default=16)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--concurrency", type=int, nargs="+", default=None)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--probe", type=float, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--logs", type=Path, default=Path("/tmp/sanet-overload"))
    args = parser.parse_args()
    server = _serve(args, args.logs)
    try:
        c0, peak = _saturating(f"{server.url}/classify", args.probe)
        runs = []
        levels = [(f"c={c}", c) for c in args.concurrency or []]
        levels = levels or [(f"{m}x", c0 * m) for m in args.levels]
        for name, c in levels:
            n = max(4 * c, int(peak * args.duration))  # a count, so unanswered ones show
            runs.append((name, c, *_run(server, c, n)))
        peak = max([peak] + [run.rate(200) for _, _, run, _ in runs])  # the best seen
        rows = [_row(name, c, run, cpu, peak) for name, c, run, cpu in runs]
    finally:
        server.stop()
    _print(args, c0, peak, rows)
    if args.out is not None:
        args.out.write_text(json.dumps({"saturating": c0, "peak": peak, "rows": rows}, indent=1))


def _print(args: argparse.Namespace, c0: int, peak: float, rows: list[dict[str, Any]]) -> None:
    print(f"{args.backend} {args.model}: saturating concurrency {c0}, peak {peak:.1f} img/s")
    print(
        "| load | c | goodput img/s | x peak | CPU ms/good img | 503 share | p99 503 ms "
        "| p99 200 ms | other | lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        p503 = f"{r['p99_503_ms']:.1f}" if r["p99_503_ms"] is not None else "-"
        p200 = f"{r['p99_200_ms']:.1f}" if r["p99_200_ms"] is not None else "-"
        print(
            f"| {r['level']} | {r['concurrency']} | {r['goodput']:.1f} | {r['x_peak']:.2f} | "
            f"{r['cpu_ms_per_good'] or float('nan'):.2f} | "
            f"{r['refused_share']:.2f} | {p503} | {p200} | {r['other_statuses'] or '-'} | "
            f"{r['unanswered']} |"
        )


if __name__ == "__main__":
    main()
