"""Load generator for sanet-serve: closed and open loop over HTTP, as users would call it.

Closed loop: ``--concurrency`` workers each send the next request when the last one answers.
Open loop: Poisson arrivals at ``--rate`` requests/s, each request its own task; arrivals while
``--max-in-flight`` are outstanding are dropped and counted. Each level runs ``--warmup`` then
``--duration`` seconds (at most ``--max-requests``); the batch sizes the server formed come from
its ``sanet_batch_size`` histogram, scraped before and after the level. Without ``--url`` every
``--config`` (server environment) is spawned in turn on a free 127.0.0.1 port.

    python -m bench.http.load                        # spawn sanet-serve, closed loop 1 4 16
    python -m bench.http.load --url http://127.0.0.1:8000 --rate 5 10 15 --body raw multipart
    python -m bench.http.load --model sanet50 --concurrency 1 16 \\
        --config torchscript:SANET_BACKEND=torchscript --config ort:SANET_BACKEND=onnxruntime
    python -m bench.http.load --body raw v2_http v2_grpc  # /classify, KServe v2 REST, gRPC
"""

from __future__ import annotations

import asyncio
import json
import logging
import shlex
import time
from collections.abc import Awaitable, Sequence
from typing import Any

import httpx

from bench.http import clients, report
from bench.http.bodies import Body, encode_bodies
from bench.http.options import parse_args
from bench.http.senders import AnySender, close_sender, drive, make_sender
from bench.server import parse_config, setting, spawned_process
from testing.ports import free_port
from testing.servers import sanet_serve_command

log = logging.getLogger("bench.http.load")


async def scrape(client: httpx.AsyncClient, base: str, model: str | None) -> dict | None:
    try:
        resp = await client.get(f"{base}/metrics", timeout=10)
        resp.raise_for_status()
        return report.batch_histogram(resp.text, model)
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("cannot read %s/metrics: %s", base, exc)
        return None


async def run_level(
    sender: AnySender,
    base: str,
    mode: str,
    level: float,
    args: Any,
    metrics: bool = True,
    *,
    job: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Warm up, scrape, measure, scrape: one point of a curve (``metrics=False``: a server
    without sanet-serve's /metrics, no batch sizes). With ``job`` (body kind, bodies, query)
    and ``args.processes`` > 1 the level runs in that many client processes."""
    pid = getattr(args, "server_pid", None)
    if job is not None and getattr(args, "processes", 1) > 1:

        async def at_start() -> dict | None:
            return await scrape(sender.client, base, args.model) if metrics else None

        job = {**job, "base": base}
        tally, elapsed, before, cpu0, cpu1 = await clients.run_processes(
            job, mode, level, args, at_start
        )
    else:
        if args.warmup > 0:
            await drive(sender, mode, level, args.warmup, args)
        before = await scrape(sender.client, base, args.model) if metrics else None
        cpu0, start = clients.server_cpu(pid), time.perf_counter()
        tally = await drive(sender, mode, level, args.duration, args)
        elapsed, cpu1 = time.perf_counter() - start, clients.server_cpu(pid)
    result = report.summarize(tally, elapsed)
    result["offered_per_s"] = (tally.sent + tally.dropped) / args.duration
    result["server_cpu_s_per_image"] = clients.cpu_per_image(cpu0, cpu1, tally.ok_images)
    after = await scrape(sender.client, base, args.model) if metrics else None
    result["batch"] = report.batch_delta(before, after)
    return {"mode": mode, "level": level, **result}


async def measure(base: str, label: str, args: Any, bodies: dict[str, list[Body]]) -> list[dict]:
    """Every body kind x every level against the server at ``base``."""
    pool = max([*args.concurrency, args.max_in_flight if args.rate else 1])
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    query = f"top_k={args.top_k}" + (f"&model={args.model}" if args.model else "")
    levels = [("closed", c) for c in args.concurrency] + [("open", r) for r in args.rate]
    runs = []
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout, headers=headers) as client:
        for kind, kind_bodies in bodies.items():
            sender = make_sender(client, base, kind, kind_bodies, query, args)
            job = {"kind": kind, "bodies": kind_bodies, "query": query}
            for mode, level in levels:
                run = await run_level(sender, base, mode, level, args, job=job)
                run.update(config=label, body=kind, images_per_request=kind_bodies[0].images)
                log.info("%s", report.describe(run))
                runs.append(run)
                if getattr(args, "rows", None):
                    with args.rows.open("a") as f:
                        f.write(json.dumps({"step": "e2e", **run}, default=str) + "\n")
            await close_sender(sender)
    return runs


def run_async(coro: Awaitable[list[dict]]) -> list[dict]:
    """asyncio.run on uvloop when it is installed (less client CPU per request)."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request
    photos = [path.read_bytes() for path in args.images]
    bodies = {kind: encode_bodies(photos, kind, args.images_per_request) for kind in args.body}
    runs: list[dict] = []
    if args.url:
        runs += run_async(measure(args.url, args.label, args, bodies))
    else:
        cmd = shlex.split(args.server_cmd) if args.server_cmd else sanet_serve_command()
        common = dict(map(setting, args.server_env))  # one K=V each: values may hold commas
        for label, env in map(parse_config, args.config or ["default"]):
            port = free_port()  # the spawned server's gRPC port (v2_grpc)
            args.grpc = f"127.0.0.1:{port}"
            env = {"SANET_MODELS": args.model, "SANET_GRPC_PORT": str(port), **common, **env}
            with spawned_process(cmd, env, args.ready_timeout) as proc:
                args.server_pid = proc.popen.pid
                runs += run_async(measure(proc.url, label, args, bodies))
    params = {k: v for k, v in vars(args).items() if k not in ("rng", "api_key")}
    title = f"sanet-serve load ({args.model or 'default model'})"
    print(report.write(runs, params, args.out, args.plot, title))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
