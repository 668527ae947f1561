"""The engine process: the device's batcher and compiled models, fed through the slot ring.

It listens on a Unix socket of the run directory before it loads anything, so front ends
connect at once and learn when it is ready (``wire.State``). Each front end sends
``Submit`` (slots, model, deadline) and ``Cancel``; the engine queues the request on the
model's lane of the batcher (``service/engine/batcher.py``), whose inference thread gathers the
batch's crops from the ring into one uint8 buffer and runs the model (normalisation
included); each request is answered with its slice of the batch's probability block, every
answer of a batch to one front end in one write. A ``Cancel`` drops what is still queued and
is not answered. A front end that disconnects (it died) has its queued
work dropped and its slots freed here. SIGTERM: stop accepting, finish what is queued, exit.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from service import errors
from service.config import ModelSpec, Settings
from service.engine import explain
from service.engine.batcher import Batcher, Ticket
from service.engine.loading import release_free_memory, torch_threads
from service.engine.model import EngineModel
from service.ipc import messages as wire
from service.ipc.slots import SlotRing
from service.memory import fix_mmap_threshold, malloc_trim
from service.metrics import Metrics

log = logging.getLogger(__name__)

#: how often the busy-time counter and the queue gauges are brought up to date
TICK_S = 0.25


@dataclass(eq=False)
class _Link:
    """One front end's connection and the requests it has in the engine."""

    pid: int
    writer: asyncio.StreamWriter
    tickets: dict[int, Ticket] = field(default_factory=dict)

    def send(self, *messages: wire.Message) -> None:
        if not self.writer.is_closing():
            wire.write(self.writer, *messages)


class Engine:
    """The engine process's state: models, batcher, front-end links."""

    def __init__(
        self,
        settings: Settings,
        ring: SlotRing,
        socket_path: Path,
        model_factory: Callable[..., EngineModel] = EngineModel,
    ) -> None:
        """``model_factory(spec, settings, ring, metrics)`` makes each served model."""
        self.settings, self.ring, self.socket_path = settings, ring, socket_path
        self.model_factory = model_factory
        self.exit_code = 0
        self.metrics = Metrics()
        self.batcher = Batcher(
            "sanet-infer",
            max_batch_size=settings.max_batch_size,
            max_delay_s=settings.max_delay_ms / 1000,
            on_settled=self._settled,
            on_idle=malloc_trim,  # after traffic, freed heap pages go back to the OS
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self.models: dict[str, EngineModel] = {}
        self.explainers: set[str] = set()  # models with an explanation lane
        self.links: dict[int, _Link] = {}
        self.state = wire.State(ready=False)
        self._stop = asyncio.Event()

    async def serve(self) -> int:
        """Listen, load, serve until SIGTERM; the exit status."""
        loop = self._loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        server = await asyncio.start_unix_server(self._connected, path=str(self.socket_path))
        try:
            loading = asyncio.create_task(self._load())
            stopping = asyncio.create_task(self._stop.wait())
            await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not loading.done():  # stopped while loading: nothing was admitted
                return 0
            if not loading.result():
                self._publish(wire.State(ready=False, failed=True))
                await asyncio.sleep(0.2)  # let the front ends read it
                return 1
            ticker = asyncio.create_task(self._tick())
            await self._stop.wait()
            log.info("engine stopping: finishing %d queued images", self._queued())
            self._publish(wire.State(ready=False, models=self.state.models))
            await asyncio.to_thread(self.batcher.stop, self.settings.drain_timeout_s)
            ticker.cancel()
            self.metrics.busy.flush()
            return self.exit_code
        finally:
            server.close()
            for link in list(self.links.values()):
                link.writer.close()

    async def _load(self) -> bool:
        try:
            for spec in self.settings.models:
                served = self.model_factory(spec, self.settings, self.ring, self.metrics)
                await _in_daemon_thread(served.load)
                self.models[served.name] = served
                self.batcher.add_model(served.name, served.run_batch)
                await self._add_explainer(spec, served)
            await asyncio.to_thread(release_free_memory)
            fix_mmap_threshold()
            torch.set_num_threads(
                torch_threads((m.info for m in self.models.values()), self.settings.threads)
            )
        except Exception:
            log.critical("startup failed; the service will not become ready", exc_info=True)
            return False
        self.batcher.start()
        described = {name: m.describe() for name, m in self.models.items()}
        self._publish(wire.State(ready=True, models=described))
        log.info("engine ready: serving %s", ", ".join(self.models))
        return True

    async def _add_explainer(self, spec: ModelSpec, served: EngineModel) -> None:
        """The model's explanation lane (``SANET_EXPLAIN``; none for the null backend)."""
        s = self.settings
        if s.explain == "off" or s.backend == "null":
            return
        device, wake = served.info.device, self.batcher.wake
        explainer = explain.EngineExplainer(spec, s, self.ring, device, on_built=wake)
        if s.explain == "eager":
            await _in_daemon_thread(explainer.load)
        lane = explain.lane(served.name)
        self.batcher.add_model(lane, explainer.run_batch, s.explain_queue, explainer.ready)
        self.explainers.add(served.name)

    def _publish(self, state: wire.State) -> None:
        self.state = state
        for link in self.links.values():
            link.send(state)

    def _queued(self) -> int:
        return sum(self.batcher.depth(name) for name in self.models)

    async def _tick(self) -> None:
        """Busy time counts a running batch as it runs; queue gauges follow the queues."""
        while True:
            self.metrics.busy.flush()
            for name in self.models:
                self.metrics.set_queue(name, self.batcher.depth(name), self.ring.n)
            if not self.batcher.alive:
                log.critical("the inference worker died; the engine exits")
                self.exit_code = 1
                self._stop.set()
                return
            await asyncio.sleep(TICK_S)

    # -- front ends --------------------------------------------------------------------------
    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        frames = wire.Frames()
        messages = await wire.read(reader, frames)
        if not messages or not isinstance(messages[0], wire.Hello):
            writer.close()
            return
        link = self.links[messages[0].pid] = _Link(messages[0].pid, writer)
        link.send(self.state)
        try:
            while messages is not None:
                for message in messages:
                    if isinstance(message, wire.Submit):
                        self._submit(link, message)
                    elif isinstance(message, wire.Cancel):
                        ticket = link.tickets.pop(message.rid, None)
                        if ticket is not None:
                            self.batcher.cancel(ticket)
                messages = await wire.read(reader, frames)
        finally:
            self._gone(link)

    def _gone(self, link: _Link) -> None:
        """A front end disconnected: drop its queued work and free the slots it held."""
        self.links.pop(link.pid, None)
        for ticket in link.tickets.values():
            self.batcher.cancel(ticket)
        freed = self.ring.reclaim(link.pid)
        if freed or link.tickets:
            log.warning(
                "front end %d went away: %d requests dropped, %d slots freed",
                link.pid,
                len(link.tickets),
                freed,
            )
        link.tickets.clear()
        link.writer.close()

    def _submit(self, link: _Link, message: wire.Submit) -> None:
        try:
            if message.model not in self.models:
                raise errors.NotReady()
            tag = (link, message.rid, message.model)
            lane, items = message.model, list[Any](message.images)
            if message.explain is not None:
                if message.model not in self.explainers:
                    raise errors.ExplainDisabled()
                lane, items = explain.lane(message.model), explain.payloads(message)
            ticket = self.batcher.submit(lane, items, message.deadline, tag)
        except errors.ServiceError as err:
            link.send(wire.Failed(message.rid, type(err).__name__))
            return
        link.tickets[message.rid] = ticket

    # -- answers ----------------------------------------------------------------------------
    def _settled(self, tickets: list[Ticket]) -> None:
        """The batcher's hand-over (its thread): answer on the event loop, once per batch."""
        if self._loop is None:
            return
        try:
            self._loop.call_soon_threadsafe(self._answer, tickets)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("event loop closed; dropping %d answers", len(tickets))

    def _answer(self, tickets: list[Ticket]) -> None:
        """One write per front end for the tickets one batch settled."""
        out: dict[int, tuple[_Link, list[wire.Message]]] = {}
        for ticket in tickets:
            link, rid, model = ticket.tag
            if link.tickets.pop(rid, None) is None:
                continue  # cancelled, or its front end went away
            out.setdefault(link.pid, (link, []))[1].append(self._message(ticket, rid, model))
        for link, messages in out.values():
            link.send(*messages)

    def _message(self, ticket: Ticket, rid: int, model: str) -> wire.Message:
        if ticket.output is None:
            err = ticket.error
            name = type(err).__name__ if isinstance(err, errors.ServiceError) else "InferenceFailed"
            return wire.Failed(rid, name)
        started = ticket.started_at or ticket.enqueued_at
        queue_s = started - ticket.enqueued_at
        self.metrics.queue_wait.labels(model=model).observe(queue_s)
        inference_s = (ticket.finished_at or started) - started
        if ticket.output.dtype.names is None:  # a classification: the probability block
            return wire.Answer(rid, ticket.output, queue_s, inference_s)
        return explain.answer(rid, ticket.output, queue_s, inference_s)


def main(settings: Settings, ring: SlotRing, socket_path: Path) -> int:
    """The engine process's entry point (forked by the supervisor, which closed the pod's
    listening sockets in it: the front ends accept, the engine must not hold the ports)."""
    return asyncio.run(Engine(settings, ring, socket_path).serve())


async def _in_daemon_thread(fn: Any) -> None:
    """Run blocking ``fn`` in a daemon thread and await it (a SIGTERM while loading ends
    the process at once instead of after the load)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
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
