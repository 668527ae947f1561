"""Failures inside the service: a failing batch, a dead worker, draining."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from testing.app import ARCH
from testing.images import image_bytes

JPEG = {"Content-Type": "image/jpeg"}


class Boom:
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("CUDA error: secret /internal/path detail")


class Fatal(BaseException):
    """Escapes the worker's per-batch ``except Exception``: the thread dies."""


class Die:
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        raise Fatal


def test_failing_batch_is_500_without_internals_and_service_recovers(
    serve: Callable[..., Any],
) -> None:
    with serve() as running:
        served = running.served(ARCH)
        good = served.engine
        served.engine = Boom()
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 500
        assert r.json() == {"error": {"code": "inference_failed", "message": "inference failed"}}
        assert "secret" not in r.text and "CUDA" not in r.text
        assert running.client.get("/readyz").status_code == 200
        served.engine = good
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 200


def test_dead_worker_turns_readiness_off(serve: Callable[..., Any]) -> None:
    with serve() as running:
        running.served(ARCH).engine = Die()
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "inference_failed"
        assert running.client.get("/readyz").status_code == 503
        assert running.client.get("/readyz").json() == {"status": "worker_dead"}
        assert running.client.get("/healthz").status_code == 503
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 503
        assert "Retry-After" in r.headers


def test_draining_refuses_new_requests(serve: Callable[..., Any]) -> None:
    with serve() as running:
        running.life.begin_drain()
        r = running.client.post("/classify", content=image_bytes(0), headers=JPEG)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "draining"
        assert "Retry-After" in r.headers
        assert running.client.get("/readyz").status_code == 503
        assert running.client.get("/healthz").status_code == 200
        assert running.metric("sanet_rejected_total", model=ARCH, reason="draining") == 1
