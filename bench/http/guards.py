"""What the HTTP layer's guards cost: requests/s of uvicorn httptools, the guarded httptools
protocol the service runs (``service/http_server.py``) and h11, interleaved rounds.

    python -m bench.http.guards --rounds 5 --requests 1500

Each round serves the real app (tiny random SA-ResNet) in a thread per setup and sends
``--requests`` keep-alive requests from one client: GET /healthz (HTTP layer only) and POST
/classify with a small JPEG (the whole path). Prints the median requests/s per setup.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from service.app import create_app
from service.config import ModelSpec, Settings
from service.http_server import server_config
from testing.images import image_bytes
from testing.servers import InThread

SETTINGS = Settings(
    models=[ModelSpec("sanet_tiny")], backend="torchscript", device="cpu", max_batch_size=1
)


def _setups() -> dict[str, Callable[..., uvicorn.Config]]:
    def guarded(app: Any, **options: Any) -> uvicorn.Config:
        return server_config(app, SETTINGS, **options)

    def plain(http: str) -> Callable[..., uvicorn.Config]:
        return lambda app, **options: uvicorn.Config(app, http=http, **options)

    return {"httptools": plain("httptools"), "guarded": guarded, "h11": plain("h11")}


def _rate(server: InThread, n: int, method: str, path: str, body: bytes | None) -> float:
    headers = {"Content-Type": "image/jpeg"}
    t0 = time.perf_counter()
    for _ in range(n):
        server.client.request(method, path, content=body, headers=headers).raise_for_status()
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    jpeg = image_bytes(0)
    rates: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name, config in _setups().items():
            with InThread(create_app(SETTINGS), config=config) as server:
                for what, method, body in (("/healthz", "GET", None), ("/classify", "POST", jpeg)):
                    n = args.requests if body is None else args.requests // 10
                    rates.setdefault((name, what), []).append(_rate(server, n, method, what, body))
    print("| setup | GET /healthz req/s | POST /classify req/s |\n|---|---|---|")
    for name in _setups():
        h, c = (statistics.median(rates[(name, w)]) for w in ("/healthz", "/classify"))
        print(f"| {name} | {h:.0f} | {c:.1f} |")


if __name__ == "__main__":
    main()
