"""The HTTP server setup: uvicorn with httptools, plus the limits uvicorn does not enforce.

uvicorn's httptools protocol has no header size limit and no header read timeout, and its
``limit_concurrency`` answers a plain-text 503 only after a connection's headers arrived (so
a flood of silent sockets still holds descriptors). h11 limits header size but answers 400,
not 431, and has no header timeout either. So the server is uvicorn's httptools protocol
(the fastest measured, docs/api.md "Limits") with three guards added per connection:

- the request line and headers together at most ``max_header_bytes``: 431 JSON, then close;
- a request's headers complete within ``header_timeout_s`` of its first byte (of the
  connection's start for the first request): otherwise the connection is closed;
- at most ``max_connections`` open connections. At the cap, a new connection takes the place
  of the longest-idle one (no request in progress: an idle keep-alive connection, or one that
  has sent nothing yet), which is closed, as nginx does; only when every connection is busy
  is the new one answered 503 JSON and closed. So a flood of idle or silent sockets cannot
  lock legitimate clients out.

Idle keep-alive connections close after ``keep_alive_timeout_s`` (uvicorn's own timer). The
limits on bodies (size, read time, what is read after a refusal) are the app's, in
``service/front/http/middleware.py`` and ``service/front/http/bodies.py``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import Gauge
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service import errors
from service.config import Settings
from service.front.errors import raw_error_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConnectionLimits:
    """What one connection may do before its request reaches the app."""

    max_header_bytes: int
    header_timeout_s: float
    max_connections: int

    @classmethod
    def of(cls, settings: Settings) -> ConnectionLimits:
        return cls(settings.max_header_bytes, settings.header_timeout_s, settings.max_connections)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header size limit, a header read timeout and a
    connection cap (see the module docstring). ``limits`` is set on the subclass that
    ``guarded_protocol`` makes, because uvicorn builds protocols from the class alone."""

    limits: ConnectionLimits
    open_gauge: Gauge | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_bytes = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._refused = False
        #: when this connection last became idle (no request in progress); None while busy
        self.idle_since: float | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.open_gauge is not None:
            self.open_gauge.inc()
        self.idle_since = self.loop.time()
        if len(self.connections) > self.limits.max_connections and not self._evict_idle():
            log.warning("refusing a connection: %d open, none idle", len(self.connections))
            self._refuse(errors.TooManyConnections())
            return
        self._arm_header_timer()

    def _evict_idle(self) -> bool:
        """Close the longest-idle other connection to make room; False when none is idle."""
        idle = [
            c
            for c in self.connections
            if isinstance(c, GuardedHttpToolsProtocol) and c is not self and c.idle_since
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c.idle_since or 0.0)
        oldest.idle_since = None
        oldest.transport.close()
        return True

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.idle_since = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.open_gauge is not None:
            self.open_gauge.dec()
        self.idle_since = None
        self._disarm_header_timer()
        super().connection_lost(exc)

    # -- parser callbacks -------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.idle_since = None
        self._header_bytes = 0
        self._arm_header_timer()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._disarm_header_timer()
        super().on_headers_complete()

    def send_400_response(self, msg: str) -> None:
        if not self._refused:  # a refusal of ours already answered and stopped the parser
            super().send_400_response(msg)

    # -- the guards -------------------------------------------------------------------------
    def _count(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self.limits.max_header_bytes:
            limit = self.limits.max_header_bytes
            self._refuse(errors.HeadersTooLarge(f"request line and headers exceed {limit} bytes"))
            raise _Refused  # stops httptools from parsing the rest of this connection's data

    def _refuse(self, err: errors.ServiceError) -> None:
        self._refused = True
        self._disarm_header_timer()
        if not self.transport.is_closing():
            self.transport.write(raw_error_response(err))
            self.transport.close()

    def _arm_header_timer(self) -> None:
        if self._header_timer is None and not self._refused:
            self._header_timer = self.loop.call_later(
                self.limits.header_timeout_s, self._header_timeout
            )

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection whose request headers did not arrive in time")
            self.transport.close()


class _Refused(Exception):
    """Raised from a parser callback to stop parsing after a refusal was sent."""


def guarded_protocol(
    limits: ConnectionLimits, open_gauge: Gauge | None = None
) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, carrying ``limits`` (and the
    gauge of open connections)."""
    attrs = {"limits": limits, "open_gauge": open_gauge}
    return type("GuardedHttpTools", (GuardedHttpToolsProtocol,), attrs)


def server_config(app: Any, settings: Settings, **overrides: Any) -> uvicorn.Config:
    """The uvicorn config of the service: one worker, guarded httptools, the settings' limits.

    ``overrides`` (e.g. ``port``) win; every front-end process and the tests' in-thread
    servers (``testing/servers.py``) use this, so tests run the limits production runs.
    """
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "workers": 1,
        "loop": "auto",
        "http": guarded_protocol(ConnectionLimits.of(settings), _open_gauge(app)),
        "lifespan": "on",
        "log_config": None,
        "log_level": settings.log_level,
        "timeout_keep_alive": settings.keep_alive_timeout_s,
        "timeout_graceful_shutdown": 5,
        "server_header": False,
        **overrides,
    }
    return uvicorn.Config(app, **options)


def _open_gauge(app: Any) -> Gauge | None:
    life = getattr(getattr(app, "state", None), "lifecycle", None)
    return life.metrics.open_connections if life is not None else None
