"""One served model as a front end sees it: admit, read, decode into slots, ask the engine.

A request is one :class:`Job` from admission to answer:

    with served.admit(deadline) as job:            # a slot reserved, or 503 at once
        images = await served.read_images(job, request, media)
        result = await job.classify(images, top_k=5, disconnect=...)

and the route renders ``result``. The job holds the request's slots in the shared ring
(``service/ipc/slots.py``) and gives them back when the block ends, whatever happened. Every
rejection of a request of this model is counted here once (``sanet_rejected_total``). What a
request uses of its front end (ring, engine link, decode pool, phase) comes in as one
:class:`FrontEnd`, built by the front end's state (``service/front/state.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from starlette.requests import Request

from model.postprocess import Prediction, labels_for, top_k_rows
from model.preprocess import crop
from service import errors
from service.config import Settings
from service.front.engine_client import EngineLink
from service.front.http import bodies
from service.ipc import messages as wire
from service.ipc.slots import F32_SLOTS, SlotRing
from service.memory import LargeDecodeGate
from service.metrics import Metrics

Disconnect = Callable[[], Awaitable[None]]
#: how long past its deadline a front end waits for the engine's own verdict on a request
#: (a request whose batch formed before its deadline is still answered)
ENGINE_GRACE_S = 0.5


class Inflight:
    """Counts this front end's admitted requests, so a drain can wait for them."""

    def __init__(self, metrics: Metrics) -> None:
        self.count = 0
        self.metrics = metrics
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self.metrics.inflight.inc()
        self._idle.clear()

    def exit(self) -> None:
        self.count -= 1
        self.metrics.inflight.dec()
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


@dataclass(frozen=True)
class FrontEnd:
    """What a request uses of its front-end process, passed in (never reached into)."""

    settings: Settings
    metrics: Metrics
    ring: SlotRing
    link: EngineLink
    pool: Executor
    decode_gate: LargeDecodeGate
    inflight: Inflight
    #: set when the drain begins: body reads in progress stop (503)
    stopping: asyncio.Event
    #: draining or stopped: new requests are refused
    closing: Callable[[], bool]
    pid: int


@dataclass(frozen=True)
class Classification:
    """One request's answer: the engine's (n, classes) block and each image's top-k."""

    model: str
    probabilities: np.ndarray
    predictions: list[list[Prediction]]
    timing_ms: dict[str, float]
    maps: np.ndarray | None = None  # an explanation's (n, h, w) maps
    targets: np.ndarray | None = None  # and the (n,) classes they explain


class ServedModel:
    """A model the engine serves, as described by the engine, and its request path."""

    def __init__(self, described: dict[str, Any], front: FrontEnd) -> None:
        self.name: str = described["name"]
        self.described = described
        self.front = front
        self.settings = front.settings
        self.input_shape = tuple(described["input_size"])
        self.labels = labels_for(int(described["num_classes"]))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def describe(self) -> dict[str, Any]:
        """The /v1/models entry (the engine's)."""
        return self.described

    @contextmanager
    def admit(self, deadline: float, started: float | None = None) -> Iterator[Job]:
        """Admit one request: one slot reserved now (``Job.grow`` for more), or raise why not."""
        front = self.front
        job = Job(self, front, deadline, started or time.monotonic())
        try:
            if front.closing():
                raise errors.Draining()
            job.grow(1)
            front.inflight.enter()
            try:
                yield job
            finally:
                job.end()
                front.inflight.exit()
        except errors.ServiceError as err:
            if err.reject_reason:
                front.metrics.rejected.labels(model=self.name, reason=err.reject_reason).inc()
            raise

    async def read_images(self, job: Job, request: Request, media: bodies.Media) -> list[bytes]:
        """The request's encoded images: its body read (bounded), then split by media type."""
        s, front = self.settings, self.front
        job.check_deadline()
        body = await bodies.read_body(request, s.max_body_bytes, job.deadline, front.stopping)
        if media.type not in (bodies.MULTIPART, bodies.JSON):
            return bodies.split_images(media, body, s.max_images_per_request)
        return await asyncio.get_running_loop().run_in_executor(
            front.pool, bodies.split_images, media, body, s.max_images_per_request
        )


@dataclass(eq=False)
class Job:
    """One admitted request: its slots, deadline, engine request and timings."""

    served: ServedModel
    front: FrontEnd
    deadline: float
    started: float
    slots: list[int] = field(default_factory=list)
    rid: int | None = None
    preprocess_s: float = 0.0

    def grow(self, n: int) -> None:
        """Hold ``n`` slots in all (503 when the ring has too few free)."""
        if n > len(self.slots):
            self.slots += self.front.ring.reserve(n - len(self.slots), self.front.pid)

    def tighten(self, deadline: float) -> None:
        """Bring the deadline forward: for protocols whose timeout is inside the body."""
        self.deadline = min(self.deadline, deadline)

    def end(self) -> None:
        """Give the slots back; the engine drops anything of this request still queued."""
        if self.rid is not None:
            self.front.link.cancel(self.rid)
        self.front.ring.free(self.slots)
        self.slots = []

    def check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise errors.DeadlineExceeded()

    async def classify(
        self,
        images: Sequence[bytes],
        *,
        top_k: int,
        disconnect: Disconnect | None = None,
        explain: wire.Explain | None = None,
    ) -> Classification:
        """Decode each image into a slot, have the engine classify them; answered in order.

        Decoding runs in the front end's pool even for one small image: Pillow releases the
        GIL, so the event loop goes on reading requests and refusing the excess at once.
        ``explain``: have the engine explain them instead (the crops stay in the slots until
        the job ends).
        """
        self.grow(len(images))
        self.check_deadline()
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        await asyncio.gather(
            *(
                loop.run_in_executor(self.front.pool, self._decode, blob, slot)
                for blob, slot in zip(images, self.slots, strict=False)
            )
        )
        self.preprocess_s = time.monotonic() - t0
        groups = tuple((s,) for s in self.slots[: len(images)])
        return await self._run(groups, top_k, disconnect, explain)

    async def predict(
        self, arrays: Sequence[np.ndarray], *, top_k: int, disconnect: Disconnect | None = None
    ) -> Classification:
        """Classify float32 ``(3, 224, 224)`` inputs, already normalised by the client."""
        for i, a in enumerate(arrays):
            if tuple(a.shape) != self.served.input_shape:
                raise errors.InvalidParameter(f"input {i} has shape {list(a.shape)}")
        self.grow(F32_SLOTS * len(arrays))
        groups = tuple(
            tuple(self.slots[i * F32_SLOTS : (i + 1) * F32_SLOTS]) for i in range(len(arrays))
        )
        for group, array in zip(groups, arrays, strict=True):
            self.front.ring.put_f32(group, array)
        return await self._run(groups, top_k, disconnect)

    def _decode(self, blob: bytes, slot: int) -> None:
        front = self.front
        s = front.settings
        t0 = time.perf_counter()
        try:
            crop(
                blob,
                max_pixels=s.max_pixels,
                gate=front.decode_gate,
                jpeg_draft=s.jpeg_draft,
                out=front.ring.crop(slot),
            )
        finally:
            front.metrics.preprocess.observe(time.perf_counter() - t0)

    async def _run(
        self,
        images: tuple[tuple[int, ...], ...],
        k: int,
        disconnect: Disconnect | None,
        explain: wire.Explain | None = None,
    ) -> Classification:
        link = self.front.link
        self.rid, fut = link.submit(self.served.name, images, self.deadline, explain)
        answer = await self._wait(fut, disconnect)
        self.rid = None  # answered: nothing to cancel
        block = answer.probabilities
        predictions = top_k_rows(torch.from_numpy(block), k, self.served.labels)
        timing = self._timing(answer)
        return Classification(
            self.served.name, block, predictions, timing, answer.maps, answer.targets
        )

    async def _wait(
        self, fut: asyncio.Future[wire.Answer], disconnect: Disconnect | None
    ) -> wire.Answer:
        """The engine's answer; the client going away or a stalled engine end the wait."""
        watch = asyncio.ensure_future(disconnect()) if disconnect is not None else None
        waiters: set[asyncio.Future[Any]] = {fut} | ({watch} if watch else set())
        timeout = max(0.0, self.deadline + ENGINE_GRACE_S - time.monotonic())
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if watch is not None:
                watch.cancel()
        if fut.done():
            return fut.result()
        if watch is not None and watch.done():
            raise errors.ClientClosed()
        raise errors.DeadlineExceeded()

    def _timing(self, answer: wire.Answer) -> dict[str, float]:
        return {
            "preprocess": round(self.preprocess_s * 1000, 3),
            "queue": round(answer.queue_s * 1000, 3),
            "inference": round(answer.inference_s * 1000, 3),
            "total": round((time.monotonic() - self.started) * 1000, 3),
        }
