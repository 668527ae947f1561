"""Prometheus metrics (names: docs/operations.md; the dashboard, alerts and autoscaler use them).

Every process of the tree records into prometheus-client's multiprocess files (the
supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before anything imports the client), and any
front end's ``/metrics`` answers for all of them: counters and histograms summed across
processes, gauges by their documented mode (``livesum``: the sum over live processes;
``max``). Outside the service (unit tests) metrics stay on the object's own registry.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

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
        self.registry = CollectorRegistry()
        self._front_end_metrics(self.registry)
        self._engine_metrics(self.registry)

    def _front_end_metrics(self, r: CollectorRegistry) -> None:
        self.requests = Counter(
            "sanet_requests_total",
            "Classify requests by model, status and protocol (gRPC: the equivalent HTTP status).",
            ["model", "status", "protocol"],
            registry=r,
        )
        self.request_duration = Histogram(
            "sanet_request_duration_seconds",
            "Classify request latency, arrival to answer.",
            ["model", "protocol"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.preprocess = Histogram(
            "sanet_preprocess_seconds",
            "Decode and preprocess time of one image.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge(
            "sanet_inflight_requests",
            "Requests admitted and not yet answered (all front ends).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.open_connections = Gauge(
            "sanet_open_connections",
            "HTTP connections open (all front ends).",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.rejected = Counter(
            "sanet_rejected_total", "Requests shed, by reason.", ["model", "reason"], registry=r
        )

    def _engine_metrics(self, r: CollectorRegistry) -> None:
        self.queue_wait = Histogram(
            "sanet_queue_wait_seconds",
            "Time a request waited in the batch queue.",
            ["model"],
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
        self.busy = BusyTime(registry=r)
        self.queue_depth = Gauge(
            "sanet_queue_depth",
            "Images waiting in the batch queue.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.queue_saturation = Gauge(
            "sanet_queue_saturation",
            "Queue depth over the slot count (0..1): per-pod load.",
            ["model"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "sanet_model_info",
            "Constant 1 per served model; labels describe it.",
            ["model", "arch", "weights", "device", "precision", "backend"],
            registry=r,
            multiprocess_mode="max",
        )

    def set_queue(self, model: str, depth: int, capacity: int) -> None:
        """The engine's view of one model's queue (updated every engine tick)."""
        self.queue_depth.labels(model=model).set(depth)
        self.queue_saturation.labels(model=model).set(depth / capacity)

    def zero_rejections(self, model: str) -> None:
        """Create a served model's rejection series at 0, so rate() works from the start."""
        for reason in REJECT_REASONS:
            self.rejected.labels(model=model, reason=reason)

    def publish_model(self, model: str, labels: dict[str, str]) -> None:
        self.model_info.labels(model=model, **labels).set(1)
        self.busy.export(model, labels["device"])  # 0 from the start: rate() works at once

    def observe_batch(self, model: str, size: int, seconds: float) -> None:
        """One executed batch of ``size`` images that took ``seconds``."""
        self.batch_size.labels(model=model).observe(size)
        self.images.labels(model=model).inc(size)
        self.inference.labels(model=model).observe(seconds)

    def observe_request(self, model: str, status: int, protocol: str, seconds: float) -> None:
        """One answered request; its latency only when it named a served model."""
        self.requests.labels(model=model, status=str(status), protocol=protocol).inc()
        if model != NO_MODEL:
            self.request_duration.labels(model=model, protocol=protocol).observe(seconds)

    def render(self, *extra: Collector) -> tuple[bytes, str]:
        """The exposition: every process's metrics (multiprocess mode) and ``extra``."""
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        for collector in extra:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST


class BusyTime:
    """``sanet_inference_busy_seconds_total{model,device}``: seconds spent executing batches.

    Its rate() is the inference worker's utilisation (0..1, summed over the models of the
    device), the autoscaling signal (docs/operations.md). A batch in progress is counted as
    it runs: ``flush`` (called by the engine every ``TICK_S`` and at the end of each batch)
    adds the time since the last flush, so the rate is right between any two scrapes even
    when one batch lasts about as long as a scrape interval.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.counter = Counter(
            "sanet_inference_busy_seconds",
            "Seconds the inference worker spent executing batches.",
            ["model", "device"],
            registry=registry,
        )
        self._lock = threading.Lock()
        self._since: dict[tuple[str, str], float] = {}

    def export(self, model: str, device: str) -> None:
        self.counter.labels(model=model, device=device)

    @contextmanager
    def timing(self, model: str, device: str) -> Iterator[Callable[[], float]]:
        """Count the block as busy; yields a function giving the block's duration after it."""
        key, start = (model, device), time.perf_counter()
        with self._lock:
            self._since[key] = start
        elapsed = 0.0
        try:
            yield lambda: elapsed
        finally:
            with self._lock:
                now = time.perf_counter()
                self.counter.labels(*key).inc(now - self._since.pop(key))
                elapsed = now - start

    def flush(self) -> None:
        """Add the running batches' time so far (they go on counting from now)."""
        now = time.perf_counter()
        with self._lock:
            for key, since in self._since.items():
                self.counter.labels(*key).inc(now - since)
                self._since[key] = now
