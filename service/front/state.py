"""What a front-end process holds between startup and shutdown, and its phases.

starting -> ready -> draining -> stopped, or failed when the engine failed to start or went
away. /healthz answers at once; /readyz is 200 only while the engine says it is ready and
this front end is not draining.
"""

from __future__ import annotations

import asyncio
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path

from service.config import Settings
from service.errors import ModelNotFound, NotReady, Unavailable
from service.front.engine_client import EngineLink
from service.front.job import FrontEnd, Inflight, ServedModel
from service.ipc import messages as wire
from service.ipc.slots import SlotRing
from service.memory import LargeDecodeGate
from service.metrics import Metrics
from service.process import lower_thread_priority

log = logging.getLogger(__name__)


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"


class Lifecycle:
    """One front end: its engine link, the slot ring, the decode pool and its phase."""

    def __init__(
        self, settings: Settings, metrics: Metrics, ring: SlotRing, engine_socket: Path
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ring = ring
        self.pid = os.getpid()
        self.phase = Phase.STARTING
        self.models: dict[str, ServedModel] = {}
        self.link = EngineLink(engine_socket, self._on_state)
        self.inflight = Inflight(metrics)
        # SANET_DECODE_NICE can run the decodes below the event loop (faster refusals)
        self.pool = ThreadPoolExecutor(
            settings.preprocess_workers,
            "sanet-decode",
            initializer=lower_thread_priority,
            initargs=(settings.decode_nice,),
        )
        self.decode_gate = LargeDecodeGate(settings.large_image_pixels, settings.max_large_decodes)
        #: set when the drain begins: body reads in progress stop (503)
        self.stopping = asyncio.Event()
        self._link_task: asyncio.Task[None] | None = None
        #: what each request uses of this front end (``service/front/job.py``)
        self.front = FrontEnd(
            settings,
            metrics,
            ring,
            self.link,
            self.pool,
            self.decode_gate,
            self.inflight,
            self.stopping,
            lambda: self.closing,
            self.pid,
        )

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY and self.link.state.ready

    @property
    def dead(self) -> bool:
        """Liveness fails: the engine failed to start or went away."""
        return self.phase is Phase.FAILED

    @property
    def closing(self) -> bool:
        """Draining or stopped: answers tell clients to close their connection."""
        return self.phase in (Phase.DRAINING, Phase.STOPPED)

    def model(self, name: str | None) -> ServedModel:
        """The served model called ``name`` (default: the first)."""
        name = name or self.settings.default_model
        served = self.models.get(name)
        if served is not None:
            if self.phase is Phase.FAILED:
                raise Unavailable()
            return served
        names = [m.name for m in self.settings.models]
        if name in names:
            raise Unavailable() if self.phase is Phase.FAILED else NotReady()
        raise ModelNotFound(f"unknown model {name[:64]!r}; served: {', '.join(names)}")

    # -- the engine's state -----------------------------------------------------------------
    def begin_startup(self) -> None:
        self._link_task = asyncio.create_task(self.link.run(), name="sanet-engine-link")

    def _on_state(self, state: wire.State) -> None:
        for name, described in state.models.items():
            if name not in self.models:
                self.models[name] = ServedModel(described, self.front)
                self.metrics.zero_rejections(name)
        if state.failed:
            self.phase = Phase.FAILED
        elif state.ready and self.phase is Phase.STARTING:
            self.phase = Phase.READY
            log.info("front end %d ready: serving %s", self.pid, ", ".join(self.models))

    # -- shutdown ---------------------------------------------------------------------------
    def begin_drain(self) -> None:
        """Readiness off and new requests refused, at once; admitted ones go on."""
        if self.phase in (Phase.READY, Phase.STARTING):
            log.info("draining: refusing new requests, finishing %d in flight", self.inflight.count)
            self.phase = Phase.DRAINING
        self.stopping.set()

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
        """Lifespan exit: drain what is left, release the pool and the link."""
        await self.drain(self.settings.drain_timeout_s)
        if self._link_task is not None:
            self._link_task.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.phase is not Phase.FAILED:
            self.phase = Phase.STOPPED
