"""Prometheus metrics on an app-owned registry (names: README "Metrics"; dashboards use them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import parse_qs

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

#: model label of requests that never resolved to a served model (unknown name)
NO_MODEL = "none"
REJECT_REASONS = ("queue_full", "deadline", "draining", "disconnected")


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
        # rate() of it is the inference worker's utilisation (0..1 summed over the models of
        # a device): the autoscaling signal (README "Kubernetes"), exact between any two
        # scrapes whatever the scrape interval, unlike a gauge sampled at scrape time.
        self.busy = Counter(
            "sanet_inference_busy_seconds_total",
            "Seconds the inference worker spent executing batches.",
            ["model", "device"],
            registry=r,
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
            "sanet_inflight_requests", "Requests admitted and not yet answered.", registry=r
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

    def watch_model(self, model: str, depth: Callable[[], int], max_queue: int) -> None:
        """Sample a model's queue at scrape time (no bookkeeping on the hot path)."""
        self.queue_depth.labels(model=model).set_function(lambda: float(depth()))
        self.queue_saturation.labels(model=model).set_function(lambda: depth() / max_queue)
        for reason in REJECT_REASONS:
            self.rejected.labels(model=model, reason=reason)  # export zeros from the start

    def publish_model(self, model: str, labels: dict[str, str]) -> None:
        self.model_info.labels(model=model, **labels).set(1)
        self.busy.labels(model=model, device=labels["device"])  # 0 from the start: rate() works

    def observe_batch(self, model: str, size: int, seconds: float, device: str) -> None:
        """One executed batch of ``size`` images that kept ``device`` busy ``seconds``."""
        self.batch_size.labels(model=model).observe(size)
        self.images.labels(model=model).inc(size)
        self.inference.labels(model=model).observe(seconds)
        self.busy.labels(model=model, device=device).inc(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


ModelOf = Callable[[Scope], str]


class RequestMetricsMiddleware:
    """Counts every /classify answer by model and status, whichever layer produced it.

    Pure ASGI, so it neither buffers bodies nor hides client disconnects. ``model_of`` names
    the served model a request asked for (``NO_MODEL`` when it names none that is served).
    """

    def __init__(
        self, app: ASGIApp, metrics: Metrics, model_of: ModelOf, path: str = "/classify"
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.model_of = model_of
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

        try:
            await self.app(scope, receive, send_status)
        finally:
            label = self.model_of(scope)
            self.metrics.requests.labels(model=label, status=str(status)).inc()
            if label != NO_MODEL:
                elapsed = time.perf_counter() - start
                self.metrics.request_duration.labels(model=label).observe(elapsed)


def query_model(default: str, served: set[str]) -> ModelOf:
    """``model_of`` for /classify: the ``model`` query parameter, else the default."""

    def model_of(scope: Scope) -> str:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        name = (query.get("model") or [""])[-1] or default
        return name if name in served else NO_MODEL

    return model_of
