"""POST /explain and KServe v1's ``POST /v1/models/{name}:explain`` (docs/api.md).

Same bodies, admission, deadlines and auth as /classify (``service/front/job.py``); the engine
explains each image on its explanation lane (``service/engine/explain.py``) and answers with
the probabilities and the maps. The overlay PNGs are drawn here, from the crops still in
the request's slots, in the front end's pool.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import asdict
from typing import Annotated, Literal

import numpy as np
import torch
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from model.explain import overlay_png
from service import errors
from service.front.auth import Life, disconnected, require_api_key
from service.front.http import bodies
from service.front.http.openapi import CLASSIFY_BODY, EXPLAIN_ERRORS, EXPLAIN_PNG
from service.front.http.routes import ModelQuery, TimeoutMs, TopK
from service.front.http.schemas import ExplainResponse
from service.front.job import Classification, Job
from service.ipc import messages as wire

router = APIRouter()

Method = Literal["gradcam", "sa"]
TargetQuery = Annotated[
    int | None, Query(ge=0, description="Class index to explain (default: each image's top-1).")
]
MethodQuery = Annotated[Method, Query(description="gradcam: Grad-CAM; sa: SA's spatial gate.")]
AcceptHeader = Annotated[str, Header(alias="Accept")]
_ROUTE = {
    "response_model": ExplainResponse,
    "responses": {**EXPLAIN_ERRORS, **EXPLAIN_PNG},
    "openapi_extra": CLASSIFY_BODY,
    "dependencies": [Depends(require_api_key)],
}


@router.post("/explain", **_ROUTE)  # type: ignore[arg-type]
async def explain(
    request: Request,
    life: Life,
    model_name: ModelQuery = None,
    target: TargetQuery = None,
    method: MethodQuery = "gradcam",
    top_k: TopK = 5,
    timeout_ms: TimeoutMs = None,
    accept: AcceptHeader = "",
) -> Response:
    """Where the network looked: per image the top-k, a 7x7 map and its overlay PNG."""
    return await _explain(request, life, model_name, target, method, top_k, timeout_ms, accept)


@router.post("/v1/models/{name}:explain", **_ROUTE)  # type: ignore[arg-type]
async def explain_v1(
    request: Request,
    life: Life,
    name: Annotated[str, Path(max_length=128)],
    target: TargetQuery = None,
    method: MethodQuery = "gradcam",
    top_k: TopK = 5,
    timeout_ms: TimeoutMs = None,
    accept: AcceptHeader = "",
) -> Response:
    """KServe v1's explain verb: /explain for the model in the path."""
    return await _explain(request, life, name, target, method, top_k, timeout_ms, accept)


async def _explain(
    request: Request,
    life: Life,
    model_name: str | None,
    target: int | None,
    method: str,
    top_k: int,
    timeout_ms: int | None,
    accept: str,
) -> Response:
    start = time.monotonic()
    served = life.model(model_name)
    if target is not None and target >= served.num_classes:
        last = served.num_classes - 1
        raise errors.InvalidParameter(f"target {target} is not a class index (0..{last})")
    media = bodies.media_type(request)
    deadline = start + (timeout_ms or life.settings.timeout_ms) / 1000
    with served.admit(deadline, start) as job:
        images = await served.read_images(job, request, media)
        spec = wire.Explain(method, (target,) * len(images))
        result = await job.classify(
            images, top_k=top_k, disconnect=lambda: disconnected(request), explain=spec
        )
        pngs = await _overlays(job, result)
    if len(pngs) == 1 and _wants_png(accept):
        return Response(pngs[0], media_type="image/png")
    return JSONResponse(_render(method, result, pngs))


async def _overlays(job: Job, result: Classification) -> list[bytes]:
    """Each image's map over its crop, drawn while the crops are still in their slots."""
    maps, _targets = _maps(result)
    ring, loop = job.front.ring, asyncio.get_running_loop()
    return list(
        await asyncio.gather(
            *(
                loop.run_in_executor(
                    job.front.pool, overlay_png, ring.crop(slot), torch.from_numpy(heat)
                )
                for slot, heat in zip(job.slots, maps, strict=False)
            )
        )
    )


def _maps(result: Classification) -> tuple[np.ndarray, np.ndarray]:
    """The engine's (n, h, w) maps and (n,) classes explained."""
    if result.maps is None or result.targets is None:
        raise errors.InferenceFailed()  # an engine that answered without maps
    return result.maps, result.targets


def _wants_png(accept: str) -> bool:
    """The client asked for the PNG itself (and not for JSON)."""
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return "image/png" in kinds and "application/json" not in kinds


def _render(method: str, result: Classification, pngs: list[bytes]) -> dict[str, object]:
    maps, targets = _maps(result)
    return {
        "model": result.model,
        "method": method,
        "results": [
            {
                "predictions": [asdict(p) for p in predictions],
                "target": int(t),
                "map": np.round(heat.astype(np.float64), 4).tolist(),
                "overlay_png": base64.b64encode(png).decode("ascii"),
            }
            for predictions, t, heat, png in zip(
                result.predictions, targets, maps, pngs, strict=True
            )
        ],
        "timing_ms": result.timing_ms,
    }
