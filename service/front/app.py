"""The app factory: ``create_app(settings)`` wires settings, metrics, lifecycle and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from service.config import Settings
from service.front import page
from service.front.errors import install_error_handlers
from service.front.http import explain as explain_http
from service.front.http.middleware import (
    BodyGuard,
    RequestMetricsMiddleware,
    ShedWhenFull,
    request_route,
)
from service.front.http.routes import router
from service.front.state import Lifecycle
from service.front.v2 import http as v2_http
from service.front.v2.grpc_server import GrpcFrontEnd, V2Servicer
from service.ipc.slots import SlotRing
from service.metrics import Metrics

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(settings: Settings, ring: SlotRing, engine_socket: Path) -> FastAPI:
    """A front end's app: it hands images to the engine at ``engine_socket`` through
    ``ring``, and is ready once the engine is (see /readyz).

    With SANET_GRPC_PORT set, the KServe v2 gRPC server runs in the same event loop: started
    with the app, stopped after the drain.
    """
    metrics = Metrics()
    lifecycle = Lifecycle(settings, metrics, ring, engine_socket)
    api_keys = [k.encode() for k in settings.api_key_values()]
    grpc_front = None
    if settings.grpc_port:
        grpc_front = GrpcFrontEnd(settings, V2Servicer(lifecycle, api_keys), metrics)
    # Swagger UI and ReDoc assets come from the fastapi-offline package: /docs and /redoc
    # load nothing from outside the machine (/redoc is page.py's, with a same-origin CSP).
    app = FastAPIOffline(
        redoc_url=None,
        static_url=page.OFFLINE_ASSETS,
        title="sanet-serve",
        summary="SA-Net (Shuffle Attention ResNet) image classification",
        version="0.1.0",
        lifespan=_lifespan(lifecycle, grpc_front),
    )
    app.state.lifecycle = lifecycle
    app.state.api_keys = api_keys
    install_error_handlers(app)
    for front_end in (router, explain_http.router, v2_http.router, page.router):
        app.include_router(front_end)
    _add_middleware(app, settings, metrics, lifecycle)
    return app


def _lifespan(lifecycle: Lifecycle, grpc_front: GrpcFrontEnd | None) -> Lifespan:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if grpc_front is not None:
            await grpc_front.start()
        lifecycle.begin_startup()
        try:
            yield
        finally:
            await lifecycle.shutdown()
            if grpc_front is not None:
                await grpc_front.stop(grace=1.0)

    return lifespan


def _add_middleware(
    app: FastAPI, settings: Settings, metrics: Metrics, lifecycle: Lifecycle
) -> None:
    route_of = request_route(settings.default_model, {m.name for m in settings.models})
    app.add_middleware(ShedWhenFull, ring=lifecycle.ring, metrics=metrics, route_of=route_of)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, route_of=route_of)
    app.add_middleware(  # outermost: it sees every answer, whoever made it
        BodyGuard,
        max_discard_bytes=settings.max_discard_bytes,
        discard_timeout_s=settings.discard_timeout_s,
        closing=lambda: lifecycle.closing,
    )
