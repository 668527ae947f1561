"""A front end's connection to the engine: submit a request, await its answer.

``run()`` connects (retrying while the engine starts), says hello, then reads the engine's
messages for as long as it lives: ``State`` (what is served, ready or not) and the answers,
each resolving the future of its request. When the engine goes away every pending request
fails with ``Unavailable`` and the link reports ``lost`` (the front end's readiness turns
false, and the supervisor ends the tree).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path

from service import errors
from service.ipc import messages as wire

log = logging.getLogger(__name__)

CONNECT_RETRY_S = 0.05


class EngineLink:
    """The front end's side of its engine connection."""

    def __init__(self, socket_path: Path, on_state: Callable[[wire.State], None]) -> None:
        self.socket_path = socket_path
        self.on_state = on_state
        self.state = wire.State(ready=False)
        self.lost = False
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[wire.Answer]] = {}
        self._ids = itertools.count(1)

    async def run(self) -> None:
        """Connect and read until the engine goes away."""
        reader, self._writer = await self._connect()
        wire.write(self._writer, wire.Hello(os.getpid()))
        frames = wire.Frames()
        try:
            while (messages := await wire.read(reader, frames)) is not None:
                for message in messages:
                    self._dispatch(message)
        except asyncio.CancelledError:  # this front end is stopping
            self._writer.close()
            raise
        self._lose()

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while True:
            try:
                return await asyncio.open_unix_connection(str(self.socket_path))
            except (FileNotFoundError, ConnectionRefusedError):
                await asyncio.sleep(CONNECT_RETRY_S)

    def _dispatch(self, message: wire.Message) -> None:
        if isinstance(message, wire.State):
            self.state = message
            self.on_state(message)
            return
        if not isinstance(message, wire.Answer | wire.Failed):
            return
        fut = self._pending.pop(message.rid, None)
        if fut is None or fut.done():
            return  # the request already ended (deadline, disconnect)
        if isinstance(message, wire.Answer):
            fut.set_result(message)
        else:
            fut.set_exception(_error(message.error))

    def _lose(self) -> None:
        if not self.lost:
            log.error("the engine connection is gone; refusing requests")
        self.lost = True
        self.state = wire.State(ready=False, models=self.state.models, failed=True)
        self.on_state(self.state)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(errors.Unavailable())
        self._pending.clear()

    # -- requests ---------------------------------------------------------------------------
    def submit(
        self,
        model: str,
        images: tuple[tuple[int, ...], ...],
        deadline: float,
        explain: wire.Explain | None = None,
    ) -> tuple[int, asyncio.Future[wire.Answer]]:
        """Send one request; its id and the future of its answer."""
        if self.lost or self._writer is None:
            raise errors.Unavailable()
        rid = next(self._ids)
        fut: asyncio.Future[wire.Answer] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        wire.write(self._writer, wire.Submit(rid, model, images, deadline, explain))
        return rid, fut

    def cancel(self, rid: int) -> None:
        """The request ended here: the engine drops what it still has queued of it (and does
        not answer)."""
        fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.cancel()
        if self._writer is not None and not self.lost and not self._writer.is_closing():
            wire.write(self._writer, wire.Cancel(rid))


def _error(name: str) -> errors.ServiceError:
    """The ``service.errors`` class the engine named (an unknown name: a 500)."""
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.ServiceError):
        return cls()
    return errors.InferenceFailed()
