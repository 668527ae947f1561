"""One served model: decode -> batched predict -> encode, behind one admission.

Front ends (``/classify``, and any other protocol) parse their request into encoded images or
tensors, then:

    with served.admit(deadline) as admission:      # 503/504 here, before any work
        ...read the body, split it into images...
        result = await served.classify(admission, images, top_k=5)

and render ``result``. Rejections are counted here (``sanet_rejected_total``), model-level
timings too; the batch itself runs in ``run_batch`` on the device's inference thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

import model
from model.postprocess import Prediction, labels_for, probabilities, top_k
from model.preprocess import PixelGate
from service import loading
from service.batcher import Batcher, Reservation, Ticket
from service.config import ModelSpec, Settings
from service.errors import InvalidParameter, ServiceError
from service.metrics import Metrics

Disconnect = Callable[[], Awaitable[None]]


class Inflight:
    """Counts admitted requests (not refused ones, not idle sockets), so a drain can wait."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def exit(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass(frozen=True)
class ImageScores:
    """One image's answer: the full probability vector and its top-k."""

    probabilities: torch.Tensor
    predictions: list[Prediction]


@dataclass(frozen=True)
class Classification:
    model: str
    results: list[ImageScores]
    timing_ms: dict[str, float]


@dataclass(eq=False)
class Admission:
    """An admitted request: the queue room it holds, its deadline and arrival time."""

    reservation: Reservation
    started: float
    batcher: Batcher = field(repr=False)

    @property
    def deadline(self) -> float:
        return self.reservation.deadline

    def resize(self, n: int) -> None:
        """Hold room for exactly ``n`` images (503 when the queue cannot take them)."""
        self.batcher.resize(self.reservation, n)

    def tighten(self, deadline: float) -> None:
        """Bring the deadline forward: for protocols whose timeout is inside the body."""
        self.reservation.deadline = min(self.reservation.deadline, deadline)


class ServedModel:
    """A compiled model, its queue on the device's batcher, its labels and input size."""

    def __init__(
        self,
        spec: ModelSpec,
        settings: Settings,
        *,
        metrics: Metrics,
        batcher: Batcher,
        pool: Executor,
        inflight: Inflight,
        gate: PixelGate | None = None,
    ) -> None:
        self.name = spec.name
        self.gate: PixelGate = gate or (lambda _pixels: contextlib.nullcontext())
        self.spec = spec
        self.settings = settings
        self.metrics = metrics
        self.batcher = batcher
        self.pool = pool
        self.inflight = inflight
        self.input_shape = loading.INPUT_SHAPE
        self.loaded: loading.Loaded | None = None
        self.engine: loading.Engine = _not_loaded
        self.labels: tuple[str, ...] = ()

    # -- startup (blocking, in the startup thread) -----------------------------------------
    def load(self) -> None:
        self.loaded = loading.load(self.spec, self.settings)
        self.engine = self.loaded.engine
        self.labels = labels_for(self.loaded.num_classes)
        self.batcher.add_model(self.name, self.run_batch)
        self.metrics.watch_model(self.name, lambda: self.depth, self.settings.max_queue)
        self.metrics.publish_model(self.name, self.describe_labels())

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def depth(self) -> int:
        return self.batcher.depth(self.name)

    # -- the request path -------------------------------------------------------------------
    @contextmanager
    def admit(self, deadline: float, started: float | None = None) -> Iterator[Admission]:
        """Admit one request (room for one image; ``resize`` for more), or raise why not.

        Every rejection of a request of this model, whatever raised it inside the block, is
        counted here once.
        """
        try:
            reservation = self.batcher.reserve(self.name, 1, deadline)
            self.inflight.enter()
            try:
                yield Admission(reservation, started or time.monotonic(), self.batcher)
            finally:
                self.batcher.release(reservation)
                self.inflight.exit()
        except ServiceError as err:
            if err.reject_reason:
                self.metrics.rejected.labels(model=self.name, reason=err.reject_reason).inc()
            raise

    async def classify(
        self,
        admission: Admission,
        images: Sequence[bytes],
        *,
        top_k: int,
        disconnect: Disconnect | None = None,
    ) -> Classification:
        """Decode, preprocess and classify encoded images, answered in order."""
        admission.resize(len(images))
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        tensors = await asyncio.gather(
            *(loop.run_in_executor(self.pool, self._decode, blob) for blob in images)
        )
        return await self._predict(admission, tensors, top_k, disconnect, time.monotonic() - t0)

    async def predict(
        self,
        admission: Admission,
        tensors: Sequence[torch.Tensor],
        *,
        top_k: int,
        disconnect: Disconnect | None = None,
    ) -> Classification:
        """Classify already-preprocessed ``(3, H, W)`` tensors of this model's input size."""
        for i, t in enumerate(tensors):
            if tuple(t.shape) != self.input_shape:
                raise InvalidParameter(f"input {i} has shape {list(t.shape)}")
        admission.resize(len(tensors))
        return await self._predict(admission, tensors, top_k, disconnect, 0.0)

    def _decode(self, blob: bytes) -> torch.Tensor:
        t0 = time.perf_counter()
        try:
            return model.preprocess(
                blob,
                max_pixels=self.settings.max_pixels,
                gate=self.gate,
                jpeg_draft=self.settings.jpeg_draft,
            )
        finally:
            self.metrics.preprocess.observe(time.perf_counter() - t0)

    async def _predict(
        self,
        admission: Admission,
        tensors: Sequence[torch.Tensor],
        k: int,
        disconnect: Disconnect | None,
        preprocess_s: float,
    ) -> Classification:
        ticket = self.batcher.submit(admission.reservation, tensors)
        probs = await self._wait(ticket, disconnect)
        queue_s = (ticket.started_at or ticket.enqueued_at) - ticket.enqueued_at
        self.metrics.queue_wait.labels(model=self.name).observe(queue_s)
        results = [ImageScores(p, top_k(p, k, self.labels)) for p in probs]
        return Classification(self.name, results, _timing(admission, ticket, preprocess_s))

    async def _wait(self, ticket: Ticket, disconnect: Disconnect | None) -> list[Any]:
        """The ticket's results; if the client goes away first, its work is dropped."""
        if disconnect is None:
            return await ticket.future
        watch: asyncio.Future[Any] = asyncio.ensure_future(disconnect())
        try:
            waiters: set[asyncio.Future[Any]] = {ticket.future, watch}
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if not ticket.future.done():
                self.batcher.cancel(ticket)
            return await ticket.future
        finally:
            watch.cancel()

    # -- the batch (inference thread) --------------------------------------------------------
    def run_batch(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """The batcher's infer_fn: a list of (3,224,224) tensors -> one probability row each."""
        busy = self.metrics.busy.timing(self.name, self._info().device)
        with busy as seconds, torch.inference_mode():
            # the CUDA engine returns host tensors, so this wall time is device busy time
            probs = probabilities(self.engine(torch.stack(images)))
        self.metrics.observe_batch(self.name, len(images), seconds())
        return list(probs.unbind(0))

    # -- what it reports --------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """The /v1/models entry."""
        s, info = self.settings, self._info()
        return {
            "name": self.name,
            "arch": info.arch,
            "default": self.name == s.default_model,
            "parameters": info.parameters,
            "num_classes": info.num_classes,
            "weights": {
                "source": info.weights.source,
                "path": info.weights.path,
                "sha256": info.weights.sha256,
            },
            "device": info.device,
            "precision": info.precision,
            "backend": info.backend,
            "fused_sa": info.fused_sa,
            "engine": info.engine_report,
            "batching": {
                "max_batch_size": s.max_batch_size,
                "max_delay_ms": s.max_delay_ms,
                "max_queue": s.max_queue,
            },
            "input_size": list(self.input_shape),
        }

    def describe_labels(self) -> dict[str, str]:
        """The labels of sanet_model_info."""
        info = self._info()
        return {
            "arch": info.arch,
            "weights": info.weights.label,
            "device": info.device,
            "precision": info.precision,
            "backend": info.backend,
        }

    def _info(self) -> loading.Loaded:
        if self.loaded is None:
            raise RuntimeError(f"model {self.name} is not loaded")
        return self.loaded


def _timing(admission: Admission, ticket: Ticket, preprocess_s: float) -> dict[str, float]:
    started = ticket.started_at or ticket.enqueued_at
    finished = ticket.finished_at or time.monotonic()
    return {
        "preprocess": round(preprocess_s * 1000, 3),
        "queue": round((started - ticket.enqueued_at) * 1000, 3),
        "inference": round((finished - started) * 1000, 3),
        "total": round((time.monotonic() - admission.started) * 1000, 3),
    }


def _not_loaded(_x: torch.Tensor) -> torch.Tensor:
    raise RuntimeError("the model is not loaded")
