"""The app factory: ``create_app(settings)`` wires settings, metrics, lifecycle and routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.body_guard import BodyGuard
from service.config import Settings
from service.error_handler import install_error_handlers
from service.lifecycle import Lifecycle
from service.metrics import Metrics, RequestMetricsMiddleware, query_model
from service.routes import router


def create_app(settings: Settings) -> FastAPI:
    """A new app; models load in the background once the server starts (see /readyz)."""
    metrics = Metrics()
    lifecycle = Lifecycle(settings, metrics)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        lifecycle.begin_startup()
        try:
            yield
        finally:
            await lifecycle.shutdown()

    app = FastAPI(
        title="sanet-serve",
        summary="SA-Net (Shuffle Attention ResNet) image classification",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.lifecycle = lifecycle
    app.state.api_keys = [k.encode() for k in settings.api_key_values()]
    install_error_handlers(app)
    app.include_router(router)
    served = {m.name for m in settings.models}
    model_of = query_model(settings.default_model, served)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics, model_of=model_of)
    app.add_middleware(  # outermost: it sees every answer, whoever made it
        BodyGuard,
        max_discard_bytes=settings.max_discard_bytes,
        discard_timeout_s=settings.discard_timeout_s,
        closing=lambda: lifecycle.closing,
    )
    return app
