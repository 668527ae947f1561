"""HTTP endpoints: /classify, /v1/models, /healthz, /readyz, /metrics (docs/api.md).

Routes are thin: parse the request, call the served model (``service/front/job.py``), render.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from service.front.auth import Life, disconnected, require_api_key
from service.front.http import bodies
from service.front.http.openapi import (
    CLASSIFY_BODY,
    CLASSIFY_ERRORS,
    HEALTH_RESPONSES,
    METRICS_RESPONSES,
    MODELS_ERRORS,
)
from service.front.http.schemas import ClassifyResponse, ImageResult, ModelsResponse, Prediction
from service.front.job import Classification
from service.front.state import Phase
from service.front.tree_metrics import TreeCollector

router = APIRouter()

#: the parameters /classify and /explain share
ModelQuery = Annotated[str | None, Query(alias="model", max_length=128)]
TopK = Annotated[int, Query(ge=1, le=1000)]
TimeoutMs = Annotated[int | None, Header(alias="X-Request-Timeout-Ms", ge=1, le=3_600_000)]


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
    model_name: ModelQuery = None,
    top_k: TopK = 5,
    timeout_ms: TimeoutMs = None,
) -> ClassifyResponse:
    """Classify one image (raw body), several (multipart ``file`` parts) or base64 JSON."""
    start = time.monotonic()
    served = life.model(model_name)
    media = bodies.media_type(request)
    deadline = start + (timeout_ms or life.settings.timeout_ms) / 1000
    with served.admit(deadline, start) as job:
        images = await served.read_images(job, request, media)
        result = await job.classify(images, top_k=top_k, disconnect=lambda: disconnected(request))
    return _render(result)


def _render(result: Classification) -> ClassifyResponse:
    return ClassifyResponse(
        model=result.model,
        results=[
            ImageResult(
                predictions=[
                    Prediction(class_index=p.class_index, label=p.label, probability=p.probability)
                    for p in predictions
                ]
            )
            for predictions in result.predictions
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
    status = life.phase.value if life.phase is not Phase.READY else "engine_not_ready"
    return JSONResponse({"status": status}, status_code=503, headers={"Retry-After": "5"})


@router.get("/metrics", response_class=Response, responses=METRICS_RESPONSES)
async def metrics(life: Life) -> Response:
    """Every process of the pod in one view (prometheus-client multiprocess mode)."""
    content, media_type = life.metrics.render(TreeCollector(life.ring))
    return Response(content, media_type=media_type)
