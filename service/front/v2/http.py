"""KServe v2 over HTTP on the service's port: ``/v2/...`` (docs/api.md "KServe v2").

Thin like ``/classify``: find the model, admit, read the body (JSON, or JSON followed by
binary tensor data when ``Inference-Header-Content-Length`` is set), call
``protocol.infer``, render. Errors come out of the one handler as ``{"error": "..."}``.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from service.errors import BadRequest, InvalidParameter
from service.front.auth import Life, disconnected, require_api_key
from service.front.http import bodies
from service.front.v2 import model_config, protocol, schemas
from service.front.v2.tensors import InferRequest, InputTensor, OutputTensor, RequestedOutput

router = APIRouter(prefix="/v2", tags=["KServe v2"])
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": schemas.V2Error} for code in (400, 401, 404, 413, 503, 504)
}
HEADER_LENGTH = "inference-header-content-length"
Auth = [Depends(require_api_key)]


@router.get("", response_model=schemas.V2ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    """Server name, version and the protocol extensions it supports."""
    return protocol.server_metadata()


@router.get("/health/live")
async def live(life: Life) -> JSONResponse:
    return JSONResponse({"live": not life.dead}, status_code=503 if life.dead else 200)


@router.get("/health/ready")
async def ready(life: Life) -> JSONResponse:
    return JSONResponse({"ready": life.ready}, status_code=200 if life.ready else 503)


@router.get("/models/{name}/ready", responses=ERRORS, dependencies=Auth)
@router.get("/models/{name}/versions/{version}/ready", responses=ERRORS, dependencies=Auth)
async def model_ready(life: Life, name: str, version: str | None = None) -> JSONResponse:
    protocol.check_version(name, version)
    life.model(name)  # 404 when unknown, 503 while it loads
    ok = life.ready
    return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


@router.get(
    "/models/{name}", response_model=schemas.V2ModelMetadata, responses=ERRORS, dependencies=Auth
)
@router.get(
    "/models/{name}/versions/{version}",
    response_model=schemas.V2ModelMetadata,
    responses=ERRORS,
    dependencies=Auth,
)
async def model_metadata(life: Life, name: str, version: str | None = None) -> dict[str, Any]:
    """Inputs ``IMAGE`` (BYTES, encoded images) or ``INPUT`` (FP32), output ``PROBABILITIES``."""
    protocol.check_version(name, version)
    return protocol.model_metadata(life.model(name))


@router.get(
    "/models/{name}/config",
    response_model=schemas.V2ModelConfig,
    responses=ERRORS,
    dependencies=Auth,
)
@router.get(
    "/models/{name}/versions/{version}/config",
    response_model=schemas.V2ModelConfig,
    responses=ERRORS,
    dependencies=Auth,
)
async def model_configuration(life: Life, name: str, version: str | None = None) -> dict[str, Any]:
    """The model's Triton model configuration (what perf_analyzer and Model Analyzer read)."""
    protocol.check_version(name, version)
    return model_config.model_config(life.model(name))


_INFER_DOC: dict[str, Any] = {
    "response_model": schemas.V2InferResponse,
    "responses": ERRORS,
    "dependencies": Auth,
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": schemas.V2InferRequest.model_json_schema(),
                    "example": schemas.INFER_EXAMPLE,
                },
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "JSON header then binary tensor data "
                    "(Inference-Header-Content-Length: length of the JSON)",
                },
            },
        }
    },
}


@router.post("/models/{name}/infer", **_INFER_DOC)
@router.post("/models/{name}/versions/{version}/infer", **_INFER_DOC)
async def infer(
    request: Request,
    life: Life,
    name: str,
    version: str | None = None,
    timeout_ms: Annotated[
        int | None, Header(alias="X-Request-Timeout-Ms", ge=1, le=3_600_000)
    ] = None,
) -> Response:
    """Classify the ``IMAGE`` or ``INPUT`` tensor; answer ``PROBABILITIES`` (or top-k)."""
    start = time.monotonic()
    settings = life.settings
    protocol.check_version(name, version)
    served = life.model(name)
    budget = (timeout_ms or settings.timeout_ms) / 1000
    with served.admit(start + budget, start) as job:
        job.check_deadline()
        body = await bodies.read_body(request, settings.max_body_bytes, job.deadline, life.stopping)
        req = parse_infer(name, body, request.headers.get(HEADER_LENGTH))
        del body
        job.tighten(protocol.deadline_of(req, start, budget))
        outputs = await protocol.infer(served, job, req, disconnect=lambda: disconnected(request))
    return render_infer(served.name, req.id, outputs)


def parse_infer(model: str, body: bytes, header_length: str | None) -> InferRequest:
    """The request: its JSON part, and binary input data cut by ``binary_data_size``."""
    n = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest("invalid Inference-Header-Content-Length")
        n = int(header_length)
    try:
        head = schemas.V2InferRequest.model_validate_json(body[:n])
    except ValidationError:
        raise InvalidParameter("the body is not a v2 inference request") from None
    binary, pos = memoryview(body)[n:], 0
    inputs = []
    for t in head.inputs:
        size = t.parameters.get("binary_data_size")
        if size is None:
            inputs.append(InputTensor(t.name, t.datatype, tuple(t.shape), values=t.data))
            continue
        if not isinstance(size, int) or size < 0 or pos + size > len(binary):
            raise InvalidParameter(f"input {t.name}: binary_data_size exceeds the binary data")
        raw = bytes(binary[pos : pos + size])
        pos += size
        inputs.append(InputTensor(t.name, t.datatype, tuple(t.shape), raw=raw))
    return InferRequest(
        model=model,
        id=head.id,
        inputs=inputs,
        outputs=[_requested(o) for o in head.outputs],
        timeout_us=_int_param(head.parameters, "timeout"),
        binary_output=head.parameters.get("binary_data_output") is True,
    )


def _requested(o: schemas.V2RequestedOutput) -> RequestedOutput:
    binary = o.parameters.get("binary_data")
    return RequestedOutput(
        o.name,
        classification=_int_param(o.parameters, "classification") or 0,
        binary=binary if isinstance(binary, bool) else None,
    )


def _int_param(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(f"parameter {key} must be an integer")
    return value


def render_infer(model: str, request_id: str, outputs: list[OutputTensor]) -> Response:
    """JSON, or JSON then the binary outputs (``Inference-Header-Content-Length``)."""
    described, blobs = [], []
    for o in outputs:
        entry: dict[str, Any] = {"name": o.name, "datatype": o.datatype, "shape": o.shape}
        if o.binary:
            blob = o.to_bytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        else:
            entry["data"] = o.to_json_data()
        described.append(entry)
    answer: dict[str, Any] = {
        "model_name": model,
        "model_version": protocol.MODEL_VERSION,
        "outputs": described,
    }
    if request_id:
        answer["id"] = request_id
    head = json.dumps(answer, separators=(",", ":")).encode()
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(
        b"".join([head, *blobs]),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(head))},
    )
