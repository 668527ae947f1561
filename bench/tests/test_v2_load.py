"""bench.http.load's KServe v2 modes against the real app: v2 REST (binary tensors) and gRPC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.http import load
from testing.app import ARCH
from testing.paths import SAMPLES
from testing.ports import free_port


def test_v2_http_and_grpc_modes(serve: Callable[..., Any], tmp_path: Path) -> None:
    with serve(grpc_port=free_port()) as running:
        argv = [
            "--url", running.url, "--grpc", f"127.0.0.1:{running.settings.grpc_port}",
            "--model", ARCH, "--body", "v2_http", "v2_grpc", "--images-per-request", "2",
            "--images", str(SAMPLES / "coffee.jpg"), str(SAMPLES / "rocket.jpg"),
            "--concurrency", "2", "--duration", "5", "--warmup", "0", "--max-requests", "6",
        ]  # fmt: skip
        args = load.parse_args(argv)
        photos = [p.read_bytes() for p in args.images]
        bodies = {k: load.encode_bodies(photos, k, 2) for k in args.body}
        runs = load.run_async(load.measure(running.url, "test", args, bodies))
        protocols = {
            p: running.metric("sanet_requests_total", model=ARCH, status="200", protocol=p)
            for p in ("v2_http", "v2_grpc")
        }
    assert [(r["body"], r["sent"], r["ok"], r["errors"]) for r in runs] == [
        ("v2_http", 6, 6, {}),
        ("v2_grpc", 6, 6, {}),
    ]
    assert all(r["images_per_s"] > 0 and r["images_per_request"] == 2 for r in runs)
    assert protocols == {"v2_http": 6, "v2_grpc": 6}  # the server saw each protocol's calls
