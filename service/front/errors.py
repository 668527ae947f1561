"""The one place that turns any exception into an HTTP answer.

Answers look like ``{"error": {"code": "...", "message": "..."}}``, status and code from the
``ServiceError`` class (``service/errors.py``).
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import model
from service import errors

log = logging.getLogger(__name__)

_FROM_MODEL: list[tuple[type[BaseException], type[errors.ServiceError]]] = [
    (model.ImageTooLargeError, errors.ImageTooLarge),
    (model.ImageDecodeError, errors.InvalidImage),
    (ClientDisconnect, errors.ClientClosed),
]


#: the gRPC status of each HTTP status a ServiceError carries (the v2 gRPC front end)
GRPC_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    499: grpc.StatusCode.CANCELLED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}
#: paths whose errors are KServe v2's ``{"error": "..."}``
V2_PREFIX = "/v2"


def grpc_status(err: errors.ServiceError) -> grpc.StatusCode:
    return GRPC_STATUS.get(err.status_code, grpc.StatusCode.INTERNAL)


def to_service_error(exc: BaseException) -> errors.ServiceError:
    """Map any exception onto a ServiceError; unknown ones become an opaque 500."""
    if isinstance(exc, errors.ServiceError):
        return exc
    if isinstance(exc, RequestValidationError):
        return errors.InvalidParameter(_validation_message(exc))
    if isinstance(exc, StarletteHTTPException):
        by_status = {404: errors.NotFound, 405: errors.MethodNotAllowed}
        return by_status.get(exc.status_code, errors.BadRequest)()
    for source, target in _FROM_MODEL:
        if isinstance(exc, source):
            return target()
    return errors.InternalError()


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "header"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid parameter"


def _headers(err: errors.ServiceError) -> dict[str, str]:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s else {}
    if err.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return headers


def _body(err: errors.ServiceError, v2: bool = False) -> dict[str, object]:
    if v2:  # KServe v2's shape
        return {"error": err.message}
    return {"error": {"code": err.code, "message": err.message}}


def error_response(err: errors.ServiceError, v2: bool = False) -> JSONResponse:
    """The JSON error: ours, or KServe v2's ``{"error": message}`` (``v2``)."""
    return JSONResponse(_body(err, v2), status_code=err.status_code, headers=_headers(err))


def raw_error_response(err: errors.ServiceError) -> bytes:
    """The same answer as whole HTTP/1.1 bytes, for the server's connection guards that
    answer before any request reaches the app (431, 503 too many connections)."""
    body = json.dumps(_body(err), separators=(",", ":")).encode()
    lines = [
        f"HTTP/1.1 {err.status_code} {HTTPStatus(err.status_code).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in _headers(err).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one exception handler: log server faults, answer the JSON error."""
    err = to_service_error(exc)
    if err.status_code == 500:
        log.error(
            "%s %s failed: %s",
            request.method,
            request.url.path,
            err.code,
            exc_info=exc if err is not exc else None,
        )
    response = error_response(err, v2=request.url.path.startswith(V2_PREFIX))
    if isinstance(exc, StarletteHTTPException) and exc.headers:
        response.headers.update(exc.headers)  # 405 keeps its Allow
    return response


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in (
        Exception,
        errors.ServiceError,
        RequestValidationError,
        StarletteHTTPException,
        model.ModelError,
        ClientDisconnect,
    ):
        app.add_exception_handler(exc_type, handle_error)
