"""HTTP endpoints: /classify, /v1/models, /healthz, /readyz, /metrics (README "HTTP API").

Routes are thin: parse the request, call the served model (``service/served.py``), render.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from service import bodies, errors
from service.lifecycle import Lifecycle, Phase
from service.openapi import (
    CLASSIFY_BODY,
    CLASSIFY_ERRORS,
    HEALTH_RESPONSES,
    METRICS_RESPONSES,
    MODELS_ERRORS,
)
from service.schemas import ClassifyResponse, ImageResult, ModelsResponse, Prediction
from service.served import Classification

router = APIRouter()


def get_lifecycle(request: Request) -> Lifecycle:
    life: Lifecycle = request.app.state.lifecycle
    return life


async def require_api_key(request: Request) -> None:
    """``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` when SANET_API_KEYS is set."""
    check_api_key(
        request.app.state.api_keys,
        request.headers.get("authorization", ""),
        request.headers.get("x-api-key"),
    )


def check_api_key(keys: list[bytes], authorization: str, x_api_key: str | None) -> None:
    """Raise ``Unauthorized`` unless a key is required and given (any front end)."""
    if not keys:
        return
    scheme, _, token = authorization.partition(" ")
    supplied = token.strip() if scheme.lower() == "bearer" else x_api_key
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
    responses=CLASSIFY_ERRORS,
    openapi_extra=CLASSIFY_BODY,
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
    served = life.model(model_name)
    deadline = start + (timeout_ms or settings.timeout_ms) / 1000
    with served.admit(deadline, start) as admission:
        ctype, params = bodies.media_type(request)
        bodies.check_media_type(ctype)
        body = await bodies.read_body(request, settings.max_body_bytes, deadline, life.stopping)
        images = await asyncio.get_running_loop().run_in_executor(
            life.pool, bodies.split_images, ctype, params, body, settings.max_images_per_request
        )
        del body
        result = await served.classify(
            admission, images, top_k=top_k, disconnect=lambda: disconnected(request)
        )
    return _render(result)


async def disconnected(request: Request) -> None:
    """Returns once the client of ``request`` went away (its body already read)."""
    # After the body is read, the server's receive() only returns on disconnect.
    while (await request.receive())["type"] != "http.disconnect":
        await asyncio.sleep(0.05)


def _render(result: Classification) -> ClassifyResponse:
    return ClassifyResponse(
        model=result.model,
        results=[
            ImageResult(
                predictions=[
                    Prediction(class_index=p.class_index, label=p.label, probability=p.probability)
                    for p in scores.predictions
                ]
            )
            for scores in result.results
        ],
        timing_ms=result.timing_ms,
    )


@router.get(
    "/v1/models",
    response_model=ModelsResponse,
    responses=MODELS_ERRORS,
    dependencies=[Depends(require_api_key)],
)
async def list_models(life: Life) -> dict[str, Any]:
    """Each loaded model: arch, parameters, weights source, device, precision, batching."""
    return {
        "default": life.settings.default_model,
        "models": [served.describe() for served in life.models.values()],
    }


@router.get("/healthz", responses=HEALTH_RESPONSES)
async def healthz(life: Life) -> JSONResponse:
    """Liveness: fails only when startup failed or the inference worker died."""
    dead = life.dead
    return JSONResponse({"status": "dead" if dead else "alive"}, status_code=503 if dead else 200)


@router.get("/readyz", responses=HEALTH_RESPONSES)
async def readyz(life: Life) -> JSONResponse:
    """Readiness: 200 only when every model is warmed up and the batcher runs."""
    if life.ready:
        return JSONResponse({"status": "ready"})
    status = life.phase.value if life.phase is not Phase.READY else "worker_dead"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
async def metrics(request: Request) -> Response:
    content, media_type = request.app.state.metrics.render()
    return Response(content, media_type=media_type)
