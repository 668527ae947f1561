"""sanet-serve beside the user's alternative (``bench.e2e.baseline``), end to end, same load.

Every config is started once and kept resident: sanet-serve fp32 (``SANET_BACKEND=auto``),
sanet-serve bf16 (OpenVINO's bf16, on a CPU with AVX512_BF16 or AMX; gate off like
INT8's), sanet-serve INT8 (OpenVINO, calibrated on generated images, agreement gate off: random
weights make agreement meaningless), and the authors' unfolded ONNX export on LitServe in
ONNX Runtime and in OpenVINO. Their idle CPU is measured first; a config that burns more than
``--idle-limit`` percent of a core while idle is instead started and stopped around each of
its turns, so it cannot steal CPU from the measured one. Then, for ``--rounds`` rounds in a
shuffled order each round, every config runs a closed loop at each ``--concurrency`` on raw
JPEG bodies (``bench.http.load``'s Sender / run_level), ``--warmup`` then ``--duration`` seconds,
longer where that gave fewer than ``--min-requests`` answers.
Reports medians per config and level, resident memory of each server's process tree after
its load, and the medians of per-round ratios sanet/baseline (c=16 throughput, c=1 p50)
against the baseline in the engine sanet-serve's ``auto`` chose and against the best one.

    python -m bench.e2e.run                      # every config this CPU runs, SANet-50, 5 rounds
    python -m bench.e2e.run --rounds 1 --duration 3 --warmup 1             # a smoke run
    python -m bench.e2e.run --configs sanet-fp32 baseline-onnxruntime --weights W
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench import proctree
from bench.common import RESULTS, machine
from bench.e2e import report as e2e_report
from bench.e2e.servers import CONFIGS, Server, default_configs
from bench.http.bodies import encode_bodies
from bench.http.load import run_level
from bench.http.options import DEFAULT_IMAGES
from bench.http.senders import Sender
from model.export_cache import default_cache_dir, engine_versions

log = logging.getLogger("bench.e2e.run")
JPEG = {"Content-Type": "image/jpeg"}


async def _level(server: Server, bodies: list, level: int, args: argparse.Namespace) -> dict:
    """One level; measured again, longer, while it completed under ``--min-requests``
    (a short point is noise: the ratios of two runs of 128 requests differed by 30%)."""
    limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout) as client:
        sender = Sender(client, f"{server.url}/classify", bodies, args.timeout)
        metrics = not server.config.is_baseline
        run = await run_level(sender, server.url, "closed", level, args, metrics=metrics)
        duration = args.duration
        while run["ok"] < args.min_requests and duration < args.max_duration:
            duration = min(
                args.max_duration, 1.2 * duration * args.min_requests / max(run["ok"], 1)
            )
            log.info("%s c=%d: %d requests, measuring %.0f s", server, level, run["ok"], duration)
            longer = argparse.Namespace(**{**vars(args), "duration": duration, "warmup": 0})
            run = await run_level(sender, server.url, "closed", level, longer, metrics=metrics)
        return run


def measure_turn(
    runner: asyncio.Runner, server: Server, others: list[Server], rnd: int, args: Any
) -> list[dict[str, Any]]:
    """Every concurrency level against ``server``; the idle servers' CPU use meanwhile."""
    runs = []
    for level in args.concurrency:
        idle_before = {str(o): proctree.cpu_seconds(o.pid) for o in others}
        t0 = time.perf_counter()
        run = runner.run(_level(server, args.bodies, level, args))
        wall = time.perf_counter() - t0
        run["others_cpu_pct"] = {
            str(o): round(100 * (proctree.cpu_seconds(o.pid) - idle_before[str(o)]) / wall, 2)
            for o in others
        }
        run.update(config=str(server), engine=server.engine, round=rnd)
        log.info("round %d %s: %s", rnd, server, e2e_report.describe(run))
        runs.append(run)
    at_end = dataclasses.asdict(proctree.memory(server.pid))
    time.sleep(args.settle)  # what stays resident once the load is over
    settled = dataclasses.asdict(proctree.memory(server.pid))
    for run in runs:
        run["memory_at_end"], run["memory_after"] = at_end, settled
    return runs


def idle_cpu(servers: list[Server], seconds: float) -> dict[str, float]:
    """Percent of one core each resident server uses while nothing is sent to any of them."""
    before = {str(s): proctree.cpu_seconds(s.pid) for s in servers}
    time.sleep(seconds)  # the quantity measured is what happens over a fixed idle interval
    return {
        str(s): round(100 * (proctree.cpu_seconds(s.pid) - before[str(s)]) / seconds, 2)
        for s in servers
    }


def run_rounds(
    runner: asyncio.Runner, servers: list[Server], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """``args.rounds`` rounds, the servers in a new shuffled order each round."""
    rng, runs = random.Random(args.seed), []
    for rnd in range(args.rounds):
        order = list(servers)
        rng.shuffle(order)
        log.info("round %d: %s", rnd, ", ".join(map(str, order)))
        for server in order:
            if server.restart_per_turn:
                server.start()
            others = [s for s in servers if s is not server and s.proc is not None]
            runs += measure_turn(runner, server, others, rnd, args)
            if server.restart_per_turn:
                server.stop()
    return runs


def top5(server: Server, photo: bytes) -> list[dict]:
    """The server's top-5 for one photo (sanet-serve's and the baseline's JSON shapes)."""
    resp = httpx.post(f"{server.url}/classify", content=photo, headers=JPEG, timeout=60)
    body = resp.raise_for_status().json()
    return list(body["results"][0]["predictions"] if "results" in body else body["predictions"])


def answers(servers: list[Server], photos: dict[str, bytes]) -> dict[str, dict[str, list]]:
    """Every server's top-5 for every photo; a baseline whose labels differ from
    sanet-fp32's is logged (the graphs differ by folding only: they agree to rounding)."""
    out = {name: {str(s): top5(s, data) for s in servers} for name, data in photos.items()}
    for name, per_server in out.items():
        reference = [p["label"] for p in per_server.get("sanet-fp32", [])]
        for label, preds in per_server.items():
            if (
                reference
                and label.startswith("baseline-")
                and [p["label"] for p in preds] != reference
            ):
                log.warning("%s: %s answers %s, sanet-fp32 %s", name, label, preds, reference)
    return out


def start_all(
    servers: list[Server], args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, dict[str, list]]]:
    """Start every server (one after another: start-up is CPU-bound), measure idle CPU, and
    turn the ones that burn CPU idle into per-turn servers. Returns the idle CPU and each
    server's answers (:func:`answers`).

    With ``--prime`` each is first started and stopped once, so that the resident servers
    start from their caches (the export, auto's choice, the INT8 model), as a restarted pod
    does: a first start that exports, measures three engines or quantizes keeps memory it
    would not need again, and the memory target is about serving.
    """
    for server in servers if args.prime else []:
        server.start()
        log.info("%s primed in %.1f s (engine %s)", server, server.ready_s[-1], server.engine)
        server.stop()
    for server in servers:
        server.start()
        log.info("%s ready in %.1f s (engine %s)", server, server.ready_s[-1], server.engine)
    first = answers(servers, {path.name: path.read_bytes() for path in args.images})
    idle = idle_cpu(servers, args.idle_seconds)
    log.info("idle CPU (%% of a core over %.0f s): %s", args.idle_seconds, idle)
    for server in servers:
        if idle[str(server)] > args.idle_limit:
            log.warning(
                "%s uses %.1f%% CPU idle: runs only for its turns", server, idle[str(server)]
            )
            server.restart_per_turn = True
            server.stop()
    return idle, first


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=default_configs(), choices=list(CONFIGS))
    p.add_argument("--arch", default="sanet50")
    p.add_argument("--weights", type=Path, default=None, help="authors' checkpoint (else random)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads, every server")
    p.add_argument("--max-batch-size", type=int, default=8, help="every server")
    p.add_argument("--max-delay-ms", type=float, default=5.0, help="batch wait, every server")
    p.add_argument("--images", nargs="+", type=Path, default=DEFAULT_IMAGES[:1])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 16])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=float, default=15.0, help="seconds measured per level")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each level")
    p.add_argument("--max-requests", type=int, default=100_000, help="per level")
    p.add_argument(
        "--min-requests", type=int, default=300, help="per level: fewer, and it runs longer"
    )
    p.add_argument("--max-duration", type=float, default=120.0, help="seconds, a longer level")
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.add_argument("--idle-seconds", type=float, default=5.0)
    p.add_argument(
        "--settle", type=float, default=3.0, help="seconds after a turn before memory is read"
    )
    p.add_argument("--idle-limit", type=float, default=2.0, help="%% of a core; above: per turn")
    p.add_argument("--server-env", action="append", default=[], metavar="K=V", help="sanet-serve")
    p.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument(
        "--prime",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="start and stop each server once first, so the measured ones start cached",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "e2e.json")
    args = p.parse_args(argv)
    if min([*args.concurrency, args.rounds, args.threads]) <= 0:
        p.error("concurrency, rounds and threads must be positive")
    args.model = None  # bench.http.load.run_level reads sanet_batch_size of every model
    args.bodies = encode_bodies([path.read_bytes() for path in args.images], "raw")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    servers = [Server(CONFIGS[label], args) for label in args.configs]
    with asyncio.Runner(loop_factory=_loop_factory()) as runner, contextlib.ExitStack() as stack:
        for server in servers:
            stack.callback(server.stop)
        idle, first = start_all(servers, args)
        runs = run_rounds(runner, servers, args)
    params = {k: v for k, v in vars(args).items() if k != "bodies"}
    payload = {
        "machine": {**machine(), "engines": engine_versions(), "litserve": _litserve()},
        "args": {k: _plain(v) for k, v in params.items()},
        "servers": {
            str(s): {
                "engine": s.engine,
                "ready_s": s.ready_s,
                "idle_cpu_pct": idle[str(s)],
                "per_turn": s.restart_per_turn,
                "engine_report": s.report,
            }
            for s in servers
        },
        "answers": first,
        "runs": runs,
    }
    print(e2e_report.write(payload, args.out))
    return 0


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def _loop_factory() -> Any:
    with contextlib.suppress(ImportError):
        import uvloop

        return uvloop.new_event_loop
    return None


def _litserve() -> str:
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version("litserve")
    return "-"


if __name__ == "__main__":
    raise SystemExit(main())
