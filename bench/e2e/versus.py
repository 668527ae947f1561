"""This checkout against another (e.g. the last release) on the same machine, interleaved.

    git worktree add /tmp/before <commit>
    python -m bench.e2e.versus --before /tmp/before --rounds 3 --duration 15

Both servers stay resident (same model, backend and settings); each round visits them in a
shuffled order and runs ``hey`` with coffee.jpg at each ``--concurrency``. Reports img/s and
p50 per server and level (medians over rounds) and the median per-round ratio after/before.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

from testing.hey import hey
from testing.paths import SAMPLES
from testing.servers import Spawned, sanet_serve_command

SAMPLE = SAMPLES / "coffee.jpg"


def _spawn(label: str, before: Path | None, args: argparse.Namespace, logs: Path) -> Spawned:
    env = {
        "SANET_MODELS": args.model,
        "SANET_BACKEND": args.backend,
        "SANET_DEVICE": "cpu",
        "SANET_MAX_BATCH_SIZE": str(args.max_batch_size),
        "SANET_LOG_LEVEL": "warning",
        "SANET_CACHE_DIR": str(logs / f"cache-{label}"),
    }
    cmd = sanet_serve_command()
    if before is not None:  # the other checkout's code, this interpreter and packages
        env["PYTHONPATH"] = str(before)
        cmd = [sys.executable, "-m", "service"]
    return Spawned(cmd, logs / f"{label}.log", env).wait_ready(600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, required=True, help="the other checkout")
    parser.add_argument("--model", default="sanet50")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=15)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="sanet-versus-"))
    servers = {"before": _spawn("before", args.before, args, logs)}
    servers["after"] = _spawn("after", None, args, logs)
    rate: dict[tuple[str, int], list[float]] = {}
    p50: dict[tuple[str, int], list[float]] = {}
    try:
        for server in servers.values():  # warm-up: first requests pay for lazy work
            hey(f"{server.url}/classify", SAMPLE, 2, seconds=3)
        for _ in range(args.rounds):
            for label in random.sample(list(servers), len(servers)):
                url = f"{servers[label].url}/classify"
                for c in args.concurrency:
                    run = hey(url, SAMPLE, c, seconds=args.duration)
                    rate.setdefault((label, c), []).append(run.rate(200))
                    p50.setdefault((label, c), []).append(1000 * (run.p(0.5, 200) or 0.0))
    finally:
        for server in servers.values():
            server.stop()
    _report(args, rate, p50)


def _report(
    args: argparse.Namespace,
    rate: dict[tuple[str, int], list[float]],
    p50: dict[tuple[str, int], list[float]],
) -> None:
    print(f"{args.model} {args.backend}, {args.rounds} rounds of {args.duration:.0f} s")
    print("| c | before img/s | after img/s | after/before | before p50 ms | after p50 ms |")
    print("|---|---|---|---|---|---|")
    for c in args.concurrency:
        b, a = rate[("before", c)], rate[("after", c)]
        ratio = statistics.median(x / y for x, y in zip(a, b, strict=True) if y)
        pb, pa = statistics.median(p50[("before", c)]), statistics.median(p50[("after", c)])
        print(
            f"| {c} | {statistics.median(b):.2f} | {statistics.median(a):.2f} | {ratio:.3f} "
            f"| {pb:.1f} | {pa:.1f} |"
        )


if __name__ == "__main__":
    main()
