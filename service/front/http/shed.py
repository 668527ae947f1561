"""Shedding before the framework: a request for a model when no slot is free gets its 503 here.

A pure ASGI middleware just inside the request metrics: for ``/classify`` and v2 ``infer``
of a served model, when the slot ring has no free slot, it answers 503 ``queue_full`` (with
``Retry-After``) without routing, dependencies or validation, so that under overload a
refusal costs as little of the CPU the admitted requests need as the HTTP parse allows.
When a slot looks free the request goes on, and admission (``ServedModel.admit``) decides
for real; the few that this check lets through at the edge are refused there.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import QueueFull
from service.front.errors import error_response
from service.ipc.slots import SlotRing
from service.metrics import NO_MODEL, Metrics, RouteOf


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
