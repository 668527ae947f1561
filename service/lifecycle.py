"""What the process holds between startup and shutdown, and its phases.

starting -> ready -> draining -> stopped (or failed). Models load in a background task so
/healthz answers and /readyz says 503 while they load; readiness is true only while every
batcher's worker runs.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum

from service.batcher import Batcher, InferenceWorker
from service.config import Settings
from service.metrics import Metrics
from service.runtime import ModelRuntime, release_free_memory

log = logging.getLogger(__name__)


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


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class Inflight:
    """Counts requests being served, so a drain can wait for zero."""

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


class Lifecycle:
    """Owns models, batchers, the inference worker and the preprocessing pool."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.phase = Phase.STARTING
        self.runtimes: dict[str, ModelRuntime] = {}
        self.batchers: dict[str, Batcher] = {}
        self.worker = InferenceWorker("sanet-infer")  # one inference thread for the device
        self.inflight = Inflight()
        self.pool = ThreadPoolExecutor(settings.preprocess_workers, "sanet-preprocess")
        self.on_fatal: Callable[[], None] | None = None  # set by the CLI: exit on failure
        self._startup: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY and all(b.alive for b in self.batchers.values())

    @property
    def accepting(self) -> bool:
        return self.phase is Phase.READY

    # -- startup ----------------------------------------------------------------------------
    def begin_startup(self) -> None:
        self._startup = asyncio.create_task(self._start(), name="sanet-startup")

    async def _start(self) -> None:
        t0 = time.perf_counter()
        try:
            for spec in self.settings.models:
                runtime = ModelRuntime(spec, self.settings, self.metrics)
                await _in_daemon_thread(runtime.load)
                self._serve(runtime)
            await asyncio.to_thread(release_free_memory)
        except Exception:
            log.critical("startup failed; the service will not become ready", exc_info=True)
            self.phase = Phase.FAILED
            if self.on_fatal is not None:
                self.on_fatal()
            return
        self.worker.start()
        if self.phase is Phase.STARTING:
            self.phase = Phase.READY
            log.info(
                "ready: serving %s (startup %.1fs)",
                ", ".join(self.runtimes),
                time.perf_counter() - t0,
            )

    def _serve(self, runtime: ModelRuntime) -> None:
        s = self.settings
        batcher = Batcher(
            runtime.name,
            runtime.infer,
            max_batch_size=s.max_batch_size,
            max_delay_s=s.max_delay_ms / 1000,
            max_queue=s.max_queue,
            worker=self.worker,
        )
        self.runtimes[runtime.name] = runtime
        self.batchers[runtime.name] = batcher
        self.metrics.watch_queue(runtime.name, lambda: batcher.depth, s.max_queue)
        runtime.publish_info()

    # -- shutdown ---------------------------------------------------------------------------
    def begin_drain(self) -> None:
        """Readiness off and new requests refused, at once. Requests already admitted (even
        those still reading or decoding their body) go on to the batcher and finish."""
        if self.phase in (Phase.READY, Phase.STARTING):
            log.info("draining: refusing new requests, finishing %d in flight", self.inflight.count)
            self.phase = Phase.DRAINING

    async def drain(self, timeout: float) -> None:
        """Begin draining and wait (up to ``timeout``) until no request is in flight."""
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
        await asyncio.to_thread(self.worker.stop, self.settings.drain_timeout_s)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.phase = Phase.STOPPED
        log.info("stopped")
