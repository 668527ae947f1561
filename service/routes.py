"""HTTP endpoints: /classify, /v1/models, /healthz, /readyz, /metrics (DESIGN §3)."""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

import model
from service import bodies, errors
from service.batcher import Batcher, QueueFull, Ticket
from service.lifecycle import Lifecycle, Phase
from service.schemas import ClassifyResponse, ErrorResponse, ImageResult, ModelsResponse, Prediction

router = APIRouter()

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse} for code in (400, 401, 404, 413, 415, 503, 504)
}


def get_lifecycle(request: Request) -> Lifecycle:
    life: Lifecycle = request.app.state.lifecycle
    return life


async def require_api_key(request: Request) -> None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` when SANET_API_KEYS is set."""
    keys: list[bytes] = request.app.state.api_keys
    if not keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    supplied = token.strip() if scheme.lower() == "bearer" else request.headers.get("x-api-key")
    if not supplied:
        raise errors.Unauthorized()
    given = supplied.encode()
    # compare against every key, so timing does not tell which prefix matched
    if not any([hmac.compare_digest(given, k) for k in keys]):
        raise errors.Unauthorized()


Life = Annotated[Lifecycle, Depends(get_lifecycle)]


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_api_key)],
)
async def classify(
    request: Request,
    life: Life,
    model_name: Annotated[str | None, Query(alias="model", max_length=128)] = None,
    top_k: Annotated[int, Query(ge=1, le=1000)] = 5,
    timeout_ms: Annotated[
        int | None, Header(alias="X-Request-Timeout-Ms", ge=1, le=3_600_000)
    ] = None,
) -> ClassifyResponse:
    """Classify one image (raw body), several (multipart ``file`` parts) or base64 JSON."""
    start = time.monotonic()
    settings = life.settings
    batcher = _admit(request, life, model_name or settings.default_model)
    deadline = start + (timeout_ms or settings.timeout_ms) / 1000
    ctype, params = bodies.media_type(request)
    bodies.check_media_type(ctype)
    body = await bodies.read_body(request, settings.max_body_bytes)
    loop = asyncio.get_running_loop()
    blobs = await loop.run_in_executor(
        life.pool, bodies.split_images, ctype, params, body, settings.max_images_per_request
    )
    del body
    if not batcher.has_room(len(blobs)):
        raise QueueFull(batcher.name)
    t_pre = time.monotonic()
    tensors = await asyncio.gather(
        *(loop.run_in_executor(life.pool, _preprocess, life, blob) for blob in blobs)
    )
    pre_s = time.monotonic() - t_pre
    ticket = batcher.submit(tensors, deadline)
    probs = await _wait(request, batcher, ticket)
    runtime = life.runtimes[batcher.name]
    results = [_top_k(p, top_k, runtime.labels) for p in probs]
    return ClassifyResponse(
        model=batcher.name,
        results=results,
        timing_ms=_timing(life, batcher.name, ticket, start, pre_s),
    )


def _admit(request: Request, life: Lifecycle, name: str) -> Batcher:
    """Shed what cannot be served before reading the body: draining, not ready, unknown."""
    if name in life.batchers:
        request.state.model_label = name
    if life.phase in (Phase.DRAINING, Phase.STOPPED):
        raise errors.Draining()
    if not life.ready:
        raise errors.Unavailable() if life.phase is Phase.READY else errors.NotReady()
    batcher = life.batchers.get(name)
    if batcher is None:
        served = ", ".join(life.batchers)
        raise errors.ModelNotFound(f"unknown model {name[:64]!r}; served: {served}")
    if not batcher.has_room(1):
        raise QueueFull(name)
    return batcher


def _preprocess(life: Lifecycle, blob: bytes) -> torch.Tensor:
    t0 = time.perf_counter()
    try:
        return model.preprocess(blob, max_pixels=life.settings.max_pixels)
    finally:
        life.metrics.preprocess.observe(time.perf_counter() - t0)


async def _wait(request: Request, batcher: Batcher, ticket: Ticket) -> list[Any]:
    """The ticket's results; if the client goes away first, its work is dropped."""
    watch = asyncio.create_task(_disconnected(request))
    try:
        waiters: set[asyncio.Future[Any]] = {ticket.future, watch}
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        if not ticket.future.done():
            batcher.cancel(ticket)
        return await ticket.future
    finally:
        watch.cancel()


async def _disconnected(request: Request) -> None:
    # After the body is read, the server's receive() only returns on disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)


def _top_k(probs: torch.Tensor, k: int, labels: tuple[str, ...]) -> ImageResult:
    values, indices = torch.topk(probs, min(k, probs.numel()))
    return ImageResult(
        predictions=[
            Prediction(class_index=i, label=labels[i], probability=v)
            for v, i in zip(values.tolist(), indices.tolist(), strict=True)
        ]
    )


def _timing(
    life: Lifecycle, name: str, ticket: Ticket, start: float, pre_s: float
) -> dict[str, float]:
    started = ticket.started_at or ticket.enqueued_at
    finished = ticket.finished_at or time.monotonic()
    queue_s = started - ticket.enqueued_at
    life.metrics.queue_wait.labels(model=name).observe(queue_s)
    return {
        "preprocess": round(pre_s * 1000, 3),
        "queue": round(queue_s * 1000, 3),
        "inference": round((finished - started) * 1000, 3),
        "total": round((time.monotonic() - start) * 1000, 3),
    }


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_api_key)],
)
async def list_models(life: Life) -> dict[str, Any]:
    """Each loaded model: arch, parameters, weights source, device, precision, batching."""
    return {
        "default": life.settings.default_model,
        "models": [rt.describe() for rt in life.runtimes.values()],
    }


@router.get("/healthz")
async def healthz(life: Life) -> JSONResponse:
    """Liveness: fails only when startup failed or the inference worker died."""
    dead = life.phase is Phase.FAILED or (
        life.phase is Phase.READY and not all(b.alive for b in life.batchers.values())
    )
    return JSONResponse({"status": "dead" if dead else "alive"}, status_code=503 if dead else 200)


@router.get("/readyz")
async def readyz(life: Life) -> JSONResponse:
    """Readiness: 200 only when every model is warmed up and its batcher runs."""
    if life.ready:
        return JSONResponse({"status": "ready"})
    status = life.phase.value if life.phase is not Phase.READY else "worker_dead"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    content, media_type = request.app.state.metrics.render()
    return Response(content, media_type=media_type)
