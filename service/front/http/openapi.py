"""What the OpenAPI document says about /classify's bodies and every route's answers.

/classify reads its body itself (three shapes, ``front/http/bodies.py``), so FastAPI cannot
infer it; this declares it, with an example each, so clients and fuzzers (schemathesis in
``tests/faults/test_openapi.py``) see the real contract.
"""

from __future__ import annotations

from typing import Any

from service.front.http.bodies import IMAGE_TYPES, JSON, MULTIPART
from service.front.http.schemas import ErrorResponse

# A 1x1 PNG: small enough for an example, a real image for a fuzzer's first try.
_PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGOokDsBAAJwAV+M1KYSAAAAAElFTkSuQmCC"
)

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_IMAGES = {
    "type": "object",
    "properties": {"images": {"type": "array", "items": {"type": "string"}}},
    "required": ["images"],
}
_B64 = {"type": "object", "properties": {"b64": {"type": "string"}}, "required": ["b64"]}
_INSTANCES = {
    "type": "object",
    "properties": {"instances": {"type": "array", "items": {"oneOf": [{"type": "string"}, _B64]}}},
    "required": ["instances"],
}

CLASSIFY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One image as raw bytes, several as multipart 'file' parts (answered "
        "in order), or JSON with base64 images (plain or data: URLs): "
        '{"images": [...]}, or KServe v1\'s {"instances": [...]} whose instances are base64 '
        'or {"b64": "<base64>"} objects.',
        "content": {
            **{t: _BINARY for t in (*IMAGE_TYPES, "application/octet-stream")},
            MULTIPART: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                    "required": ["file"],
                }
            },
            JSON: {
                "schema": {"oneOf": [_IMAGES, _INSTANCES]},
                "example": {"images": [_PNG_B64]},
            },
        },
    }
}

_WHY = {
    400: "Undecodable image, bad base64 or JSON, malformed multipart, no image, bad parameter",
    401: "Missing or wrong API key (when SANET_API_KEYS is set)",
    404: "Unknown model",
    408: "The body did not arrive before the request's deadline",
    413: "Body, image (pixels) or image count over its limit",
    415: "Unsupported Content-Type (the message names the accepted ones)",
    431: "Request line and headers over SANET_MAX_HEADER_BYTES",
    500: "The batch failed inside the model",
    501: "Explanations are off (SANET_EXPLAIN=off, or the null backend)",
    503: "Queue full, not ready, draining, worker down or too many connections (Retry-After)",
    504: "The deadline passed while queued",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each error status with the error body."""
    return {c: {"model": ErrorResponse, "description": _WHY[c]} for c in codes}


CLASSIFY_ERRORS = error_responses(400, 401, 404, 408, 413, 415, 431, 500, 503, 504)
EXPLAIN_ERRORS = error_responses(400, 401, 404, 408, 413, 415, 431, 500, 501, 503, 504)
EXPLAIN_PNG: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON; or, for one image and 'Accept: image/png', the overlay PNG",
        "content": {"image/png": _BINARY},
    }
}
MODELS_ERRORS = error_responses(401, 431, 503)
HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {"description": "Not alive / not ready (starting, draining, worker down)"}
}
METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}},
    }
}
