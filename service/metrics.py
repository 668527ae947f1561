"""Prometheus metrics on an app-owned registry (names: DESIGN §3; dashboards rely on them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
    30.0,
)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 256, 512)

#: model label of requests that never resolved to a served model (unknown name, bad auth...)
NO_MODEL = "none"


class Metrics:
    """Every sanet_* metric, registered on ``self.registry`` (never the global one)."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        self.requests = Counter(
            "sanet_requests_total",
            "Classify requests by model and status.",
            ["model", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            "sanet_request_duration_seconds",
            "Classify request latency, arrival to answer.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "sanet_queue_wait_seconds",
            "Time a request waited in the batch queue.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.preprocess = Histogram(
            "sanet_preprocess_seconds",
            "Decode and preprocess time of one image.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "sanet_inference_seconds",
            "Model time of one executed batch.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sanet_batch_size",
            "Images per executed batch.",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.images = Counter(
            "sanet_images_total", "Images run through the model.", ["model"], registry=r
        )
        self.queue_depth = Gauge(
            "sanet_queue_depth", "Images waiting in the batch queue.", ["model"], registry=r
        )
        self.queue_saturation = Gauge(
            "sanet_queue_saturation",
            "Queue depth over max queue (0..1): per-pod load.",
            ["model"],
            registry=r,
        )
        self.inflight = Gauge(
            "sanet_inflight_requests", "Classify requests being served.", registry=r
        )
        self.rejected = Counter(
            "sanet_rejected_total", "Requests shed, by reason.", ["model", "reason"], registry=r
        )
        self.model_info = Gauge(
            "sanet_model_info",
            "Constant 1 per served model; labels describe it.",
            ["model", "arch", "weights", "device", "precision", "backend"],
            registry=r,
        )

    def watch_queue(self, model: str, depth: Callable[[], int], max_queue: int) -> None:
        """Sample a batcher's queue at scrape time (no bookkeeping on the hot path)."""
        self.queue_depth.labels(model=model).set_function(lambda: float(depth()))
        self.queue_saturation.labels(model=model).set_function(lambda: depth() / max_queue)
        for reason in ("queue_full", "deadline", "draining", "disconnected"):
            self.rejected.labels(model=model, reason=reason)  # export zeros from the start

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        self.batch_size.labels(model=model).observe(size)
        self.images.labels(model=model).inc(size)
        self.inference.labels(model=model).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Tracker(Protocol):
    def enter(self) -> None: ...
    def exit(self) -> None: ...


class RequestMetricsMiddleware:
    """Counts every /classify answer by status, whichever layer produced it (auth, 4xx, 5xx).

    Pure ASGI, so it neither buffers bodies nor hides client disconnects. The route stores the
    resolved model name in ``request.state.model_label``.
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, tracker: Tracker, path: str = "/classify"
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracker = tracker
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.inflight.inc()
        self.tracker.enter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.tracker.exit()
            self.metrics.inflight.dec()
            label = scope.get("state", {}).get("model_label") or NO_MODEL
            self.metrics.requests.labels(model=label, status=str(status)).inc()
            if label != NO_MODEL:
                elapsed = time.perf_counter() - start
                self.metrics.request_duration.labels(model=label).observe(elapsed)
