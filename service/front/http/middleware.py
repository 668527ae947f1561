"""The front end's own ASGI middleware: answers the client can read, refusals before routing.

``BodyGuard``: an answer the client can read, and connections that close when they should.
A client without ``Expect: 100-continue`` (urllib, requests, most SDKs) writes its whole body
before it reads the answer. If the server answers early (413, 415, 401, 503 while draining)
and closes with the body unread, the client's send fails with a reset and it never sees the
answer. So when an answer goes out before the request body was read to its end, this
middleware

- marks it ``Connection: close`` (the rest of the body must not be parsed as a new request,
  nor the connection kept reading an unbounded chunked body),
- sends the answer, then reads and discards at most ``max_discard_bytes`` more of the body
  within ``discard_timeout_s``, and only then completes the response, so the server closes
  a connection whose body has arrived.

It skips the discard when it cannot help: the client waits for ``100 Continue`` (it sends
nothing more), the declared length is beyond the bound, or the answer is 408 (a slow client).
While the service drains, every answer is marked ``Connection: close``.

``RequestMetricsMiddleware``: counts every classify answer by model, status and protocol.

``ShedWhenFull``: just inside the request metrics, for ``/classify`` and v2 ``infer`` of a
served model, when the slot ring has no free slot, it answers 503 ``queue_full`` (with
``Retry-After``) without routing, dependencies or validation, so that under overload a
refusal costs as little of the CPU the admitted requests need as the HTTP parse allows.
When a slot looks free the request goes on, and admission (``ServedModel.admit``) decides
for real; the few that this check lets through at the edge are refused there.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import QueueFull
from service.front.errors import error_response
from service.ipc.slots import SlotRing
from service.metrics import NO_MODEL, Metrics

#: (protocol, model) of a request that is counted, None for one that is not
RouteOf = Callable[[Scope], tuple[str, str] | None]


class RequestMetricsMiddleware:
    """Counts every classify answer (/classify, v2 infer) by model, status and protocol,
    whichever layer produced it.

    Pure ASGI, so it neither buffers bodies nor hides client disconnects. ``route_of`` names
    the protocol and the served model a request asked for (``NO_MODEL`` when it names none
    that is served), or None for requests that are not counted.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, route_of: RouteOf) -> None:
        self.app = app
        self.metrics = metrics
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.route_of(scope) if scope["type"] == "http" else None
        if route is None:
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            protocol, model = route
            self.metrics.observe_request(model, status, protocol, time.perf_counter() - start)


_V2_INFER = re.compile(r"/v2/models/([^/]+)(?:/versions/[^/]+)?/infer")
_V1_EXPLAIN = re.compile(r"/v1/models/([^/]+):explain")


def request_route(default: str, served: set[str]) -> RouteOf:
    """``route_of`` for the HTTP front ends: /classify and /explain name their model in the
    ``model`` query parameter (else the default), v2 infer and v1 explain in the path. The
    protocol label tells explanations (``explain``, ``v1_explain``) from classifications."""

    def route_of(scope: Scope) -> tuple[str, str] | None:
        path = scope["path"]
        if path in ("/classify", "/explain"):
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            name = (query.get("model") or [""])[-1] or default
            return path[1:], name if name in served else NO_MODEL
        v1 = _V1_EXPLAIN.fullmatch(path) if path.startswith("/v1/") else None
        if v1 is not None:
            return "v1_explain", v1.group(1) if v1.group(1) in served else NO_MODEL
        v2 = _V2_INFER.fullmatch(path) if path.startswith("/v2/") else None
        if v2 is not None:
            return "v2_http", v2.group(1) if v2.group(1) in served else NO_MODEL
        return None

    return route_of


class _Body:
    """Watches one request's body as the app receives it."""

    def __init__(self, receive: Receive, scope: Scope) -> None:
        self._receive = receive
        headers = dict(scope.get("headers", ()))
        length = headers.get(b"content-length", b"")
        self.declared = int(length) if length.isdigit() else None
        self.expect_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        self.done = self.declared == 0 or (self.declared is None and not chunked)
        self.received = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            self.done = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.done = True
        return message


class BodyGuard:
    """See the module docstring; ``closing()`` is true while the service drains."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_discard_bytes: int,
        discard_timeout_s: float,
        closing: Callable[[], bool],
    ) -> None:
        self.app = app
        self.max_discard_bytes = max_discard_bytes
        self.discard_timeout_s = discard_timeout_s
        self.closing = closing

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = _Body(receive, scope)
        early = False
        status = 0

        async def guarded_send(message: Message) -> None:
            nonlocal early, status
            if message["type"] == "http.response.start":
                status, early = message["status"], not body.done
                if early or self.closing():
                    message = {**message, "headers": [*_without_connection(message), _CLOSE]}
            elif message["type"] == "http.response.body" and early and not message.get("more_body"):
                # flush the answer, read what the client is still sending, then finish
                await send({**message, "more_body": True})
                await self._discard(body, status)
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app(scope, body.receive, guarded_send)

    async def _discard(self, body: _Body, status: int) -> None:
        if body.done or status == 408 or (body.expect_continue and body.received == 0):
            return
        start = body.received
        if body.declared is not None and body.declared - start > self.max_discard_bytes:
            return  # it cannot arrive within the bound: close at once
        ends = time.monotonic() + self.discard_timeout_s
        while not body.done and body.received - start <= self.max_discard_bytes:
            left = ends - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(body.receive(), left)
            except TimeoutError:
                return


_CLOSE = (b"connection", b"close")


def _without_connection(message: Message) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]


class ShedWhenFull:
    """Refuse at once when the ring is full (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, ring: SlotRing, metrics: Metrics, route_of: RouteOf
    ) -> None:
        self.app, self.ring, self.metrics, self.route_of = app, ring, metrics, route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and self.ring.full():
            route = self.route_of(scope)
            if route is not None and route[1] != NO_MODEL:
                protocol, model = route
                err = QueueFull()
                self.metrics.rejected.labels(model=model, reason=err.reject_reason).inc()
                await error_response(err, v2=protocol == "v2_http")(scope, receive, send)
                return
        await self.app(scope, receive, send)
