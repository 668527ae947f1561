"""A front-end process: uvicorn (HTTP) and gRPC on the pod's shared listening sockets.

Forked by the supervisor with the HTTP socket already bound and listening; every front end
accepts from that one socket, so a front end that dies leaves the connections waiting in the
backlog to the others. SIGTERM (sent by the supervisor) drains:

1. /readyz and new requests answer 503 with ``Connection: close`` at once; admitted requests
   finish (up to SANET_DRAIN_TIMEOUT_S).
2. Then the front end stops taking connections (``service/front/http/listener.py``): new
   connection attempts are dropped by the kernel, the connections already in the accept
   backlog are accepted and answered 503 with ``Connection: close``, and this process's copy
   of the listener closes. Once every front end has closed its copy, connection attempts are
   refused.
3. The connections still open finish their request (503, ``Connection: close``); the process
   exits 0 once none has been active for ``QUIET_S``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from pathlib import Path
from types import FrameType

import uvicorn

from service.config import Settings
from service.front.app import create_app
from service.front.http.listener import backlog_waiting, refuse_new_connections
from service.front.http.server import GuardedHttpToolsProtocol, server_config
from service.front.state import Lifecycle
from service.ipc.slots import SlotRing

log = logging.getLogger(__name__)
#: a draining front end exits once no connection has been active for this long
QUIET_S = 0.3
#: after new connection attempts are dropped, how long handshakes already under way (one
#: round trip) get to land in the accept backlog before it is emptied and closed
SETTLE_S = 0.1


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose SIGTERM drains the app before the usual shutdown."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._listeners: list[socket.socket] = []

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._listeners = list(sockets or [])
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not calling super(): it re-raises the signal after shutdown (exit status 143).
        if sig == signal.SIGINT:
            return  # a terminal's Ctrl-C reaches the whole group: the supervisor decides
        if self._drain is not None or self._loop is None:
            self.force_exit = self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.create_task(self._drain_then_exit())

    async def _drain_then_exit(self) -> None:
        started = time.monotonic()
        timeout = self.lifecycle.settings.drain_timeout_s
        await self.lifecycle.drain(timeout)
        await self._stop_accepting(started + timeout)
        await self._until_quiet(started + timeout)
        self.should_exit = True

    async def _stop_accepting(self, deadline: float) -> None:
        """Stop taking connections without resetting one (the module docstring, step 2)."""
        # The listener is the pod's, shared by every front end: it stops taking connections
        # only once no front end holds admitted work (a slot), so those still draining go on
        # answering new connections with 503 meanwhile.
        while self.lifecycle.ring.used() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if all(refuse_new_connections(s) for s in self._listeners):
            await asyncio.sleep(SETTLE_S)  # meanwhile the loop accepts what lands
            while any(backlog_waiting(s) for s in self._listeners):
                if time.monotonic() >= deadline:
                    break
                await asyncio.sleep(0.01)  # the loop (or another front end) accepts it
        for server in self.servers:
            server.close()  # this process's copy of the listening socket

    async def _until_quiet(self, deadline: float) -> None:
        """Keep answering (503, ``Connection: close``) until no connection has been active
        for ``QUIET_S``: a connection that has just been opened, or is sending a request, is
        answered rather than closed under its client (which would read as a reset)."""
        while time.monotonic() < deadline:
            now = asyncio.get_running_loop().time()
            busy = [
                c
                for c in self.server_state.connections
                if not isinstance(c, GuardedHttpToolsProtocol)
                or c.idle_since is None
                or now - c.idle_since < QUIET_S
            ]
            if not busy:
                return
            await asyncio.sleep(QUIET_S / 4)


def main(
    settings: Settings, ring: SlotRing, listener: socket.socket, engine_socket: Path, index: int
) -> int:
    """The front end's entry point (forked by the supervisor); its exit status."""
    app = create_app(settings, ring, engine_socket)
    server = DrainingServer(server_config(app, settings), app.state.lifecycle)
    server.run(sockets=[listener])
    return 0
