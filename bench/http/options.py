"""The command line of ``bench.http.load``: what to load, how, and what to write."""

from __future__ import annotations

import argparse
import functools
import os
import random
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import RESULTS
from testing.paths import SAMPLES

DEFAULT_IMAGES = [SAMPLES / n for n in ("coffee.jpg", "astronaut.jpg", "chelsea.jpg", "rocket.jpg")]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def check_local(url: str, allow_remote: bool) -> str:
    host = urlsplit(url).hostname
    if not allow_remote and host not in LOCAL_HOSTS:
        raise SystemExit(f"refusing to load {host!r}: only 127.0.0.1/localhost (--allow-remote)")
    return url.rstrip("/")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The load generator's arguments, checked."""
    p = argparse.ArgumentParser(description="Load generator for sanet-serve (bench.http.load).")
    p.add_argument("--url", help="measure this running server (default: spawn sanet-serve)")
    p.add_argument("--spawn", action="store_true", help="spawn sanet-serve (the default)")
    add_list = functools.partial(p.add_argument, action="append", default=[])
    add_list("--config", metavar="LABEL[:K=V,...]", help="spawned server setup (one curve each)")
    add_list("--server-env", metavar="K=V", help="environment of every spawned server")
    p.add_argument("--server-cmd", default=None, help="command that starts the server")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--label", default="server", help="curve label with --url")
    p.add_argument("--model", default=None, help="?model= (spawned servers: sanet50)")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--images", nargs="+", type=Path, default=DEFAULT_IMAGES)
    p.add_argument(
        "--body",
        nargs="+",
        default=["raw"],
        choices=["raw", "multipart", "base64", "v2_http", "v2_grpc"],
    )
    p.add_argument("--grpc", default=None, help="gRPC host:port with --url (default: :8001)")
    p.add_argument("--images-per-request", type=int, default=1)
    p.add_argument("--concurrency", nargs="*", type=int, default=[1, 4, 16])
    p.add_argument("--rate", nargs="*", type=float, default=[], help="open-loop requests/s")
    p.add_argument("--max-in-flight", type=int, default=256, help="open-loop cap")
    p.add_argument("--duration", type=float, default=15.0, help="seconds measured per level")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each level")
    p.add_argument("--max-requests", type=int, default=100_000, help="per level")
    p.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    p.add_argument("--api-key", default=os.environ.get("SANET_BENCH_API_KEY"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--processes", type=int, default=1, help="client processes per level")
    p.add_argument("--server-pid", type=int, default=None, help="with --url: CPU per image")
    p.add_argument("--allow-remote", action="store_true")
    p.add_argument("--out", type=Path, default=RESULTS / "load.json")
    p.add_argument(
        "--rows", type=Path, default=None, help="append each level here as a JSON line at once"
    )
    p.add_argument("--plot", type=Path, default=RESULTS / "load.png")
    return _checked(p, p.parse_args(argv))


def _checked(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    if args.url and (args.spawn or args.config or args.server_env):
        p.error("--url measures a running server: no --spawn/--config/--server-env")
    if args.processes <= 0:
        p.error("--processes must be positive")
    if not args.concurrency and not args.rate:
        p.error("nothing to run: give --concurrency and/or --rate")
    if min([*args.concurrency, *args.rate, args.images_per_request, args.max_in_flight]) <= 0:
        p.error("concurrency, rate, images per request and in-flight cap must be positive")
    args.url = check_local(args.url, args.allow_remote) if args.url else None
    if args.url and not args.grpc:
        args.grpc = f"{urlsplit(args.url).hostname}:8001"
    args.model = args.model or (None if args.url else "sanet50")
    args.rng = random.Random(args.seed)
    return args
