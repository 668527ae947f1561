"""What the process holds between startup and shutdown, and its phases.

starting -> ready -> draining -> stopped (or failed). Models load in a background task so
/healthz answers and /readyz says 503 while they load; readiness is true only while the
device's inference worker runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from service.batcher import Batcher
from service.config import Settings
from service.errors import ModelNotFound, NotReady
from service.loading import release_free_memory
from service.memory import LargeDecodeGate, fix_mmap_threshold, malloc_trim
from service.metrics import Metrics
from service.served import Inflight, ServedModel

log = logging.getLogger(__name__)


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class Lifecycle:
    """Owns the served models, the device's batcher and the preprocessing pool."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.phase = Phase.STARTING
        self.models: dict[str, ServedModel] = {}  # filled once every model is loaded
        self.batcher = Batcher(  # one inference thread for the device
            "sanet-infer",
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_delay_ms / 1000,
            max_queue=settings.max_queue,
            on_idle=malloc_trim,  # after traffic, freed heap pages go back to the OS
        )
        self.inflight = Inflight()
        metrics.inflight.set_function(lambda: self.inflight.count)  # read at scrape time
        self.pool = ThreadPoolExecutor(settings.preprocess_workers, "sanet-preprocess")
        self.decode_gate = LargeDecodeGate(settings.large_image_pixels, settings.max_large_decodes)
        #: set when the drain begins: body reads still in progress stop (503), so a slow
        #: upload does not hold the drain
        self.stopping = asyncio.Event()
        self.on_fatal: Callable[[], None] | None = None  # set by the CLI: exit on failure
        self._startup: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY and self.batcher.alive

    @property
    def dead(self) -> bool:
        """Liveness fails: startup failed, or the worker died while serving."""
        return self.phase is Phase.FAILED or (self.phase is Phase.READY and not self.batcher.alive)

    def model(self, name: str | None) -> ServedModel:
        """The served model called ``name`` (default: the first). Admission is its business."""
        name = name or self.settings.default_model
        served = self.models.get(name)
        if served is not None:
            return served
        names = [m.name for m in self.settings.models]
        if name in names:
            raise NotReady()
        raise ModelNotFound(f"unknown model {name[:64]!r}; served: {', '.join(names)}")

    # -- startup ----------------------------------------------------------------------------
    def begin_startup(self) -> None:
        self._startup = asyncio.create_task(self._start(), name="sanet-startup")

    async def _start(self) -> None:
        t0 = time.perf_counter()
        loaded: dict[str, ServedModel] = {}
        try:
            for spec in self.settings.models:
                served = ServedModel(
                    spec,
                    self.settings,
                    metrics=self.metrics,
                    batcher=self.batcher,
                    pool=self.pool,
                    inflight=self.inflight,
                    gate=self.decode_gate,
                )
                await _in_daemon_thread(served.load)
                loaded[served.name] = served
            await asyncio.to_thread(release_free_memory)
            fix_mmap_threshold()  # after loading: large buffers of requests are unmapped
        except Exception:
            log.critical("startup failed; the service will not become ready", exc_info=True)
            self.phase = Phase.FAILED
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.batcher.start()
        self.models = loaded
        if self.phase is Phase.STARTING:
            self.phase = Phase.READY
            log.info(
                "ready: serving %s (startup %.1fs)", ", ".join(loaded), time.perf_counter() - t0
            )
        else:  # a drain began while loading
            self.batcher.close()

    # -- shutdown ---------------------------------------------------------------------------
    @property
    def closing(self) -> bool:
        """Draining or stopped: answers tell clients to close their connection."""
        return self.phase in (Phase.DRAINING, Phase.STOPPED)

    def begin_drain(self) -> None:
        """Readiness off and new requests refused, at once. Requests whose body is still
        arriving are answered 503 (``stopping``); those past it go on to the batcher."""
        if self.phase in (Phase.READY, Phase.STARTING):
            log.info("draining: refusing new requests, finishing %d in flight", self.inflight.count)
            self.phase = Phase.DRAINING
        self.stopping.set()
        self.batcher.close()

    async def drain(self, timeout: float) -> None:
        """Begin draining and wait (up to ``timeout``) until no admitted request is left."""
        self.begin_drain()
        try:
            await asyncio.wait_for(self.inflight.wait_idle(), timeout)
        except TimeoutError:
            log.warning(
                "drain timeout (%.1fs): %d requests still in flight", timeout, self.inflight.count
            )

    async def shutdown(self) -> None:
        """Lifespan exit: drain what is left, stop the worker, release the pool."""
        await self.drain(self.settings.drain_timeout_s)
        if self._startup is not None and not self._startup.done():
            self._startup.cancel()
        await asyncio.to_thread(self.batcher.stop, self.settings.drain_timeout_s)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.phase = Phase.STOPPED
        log.info("stopped")


async def _in_daemon_thread(fn: Callable[[], None]) -> None:
    """Run blocking ``fn`` in a daemon thread and await it.

    Loading a model (checkpoint, export, warm-up) cannot be interrupted. A daemon thread
    lets a SIGTERM during startup end the process at once instead of after the load.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # handed to the awaiting task, which decides
            loop.call_soon_threadsafe(_settle, done, exc)
        else:
            loop.call_soon_threadsafe(_settle, done, None)

    threading.Thread(target=run, name="sanet-load", daemon=True).start()
    await done


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    if fut.done():
        return
    if exc is None:
        fut.set_result(None)
    else:
        fut.set_exception(exc)
