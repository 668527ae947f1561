"""Typed service errors and the one place that turns any exception into an HTTP answer.

Answers look like ``{"error": {"code": "...", "message": "..."}}``. Messages are ours: an
internal exception's text never reaches the client (it goes to the log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

import model
from service import batcher

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error with a stable ``code`` and an HTTP status; ``message`` is safe to show."""

    status_code = 500
    code = "internal_error"
    default_message = "internal error"
    #: label of sanet_rejected_total when this error sheds a request
    reject_reason: str | None = None
    retry_after_s: int | None = None

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


def _error(name: str, status: int, code: str, message: str, **extra: object) -> type[ServiceError]:
    attrs: dict[str, object] = {
        "status_code": status,
        "code": code,
        "default_message": message,
        **extra,
    }
    return type(name, (ServiceError,), attrs)


BadRequest = _error("BadRequest", 400, "bad_request", "bad request")
InvalidParameter = _error("InvalidParameter", 400, "invalid_parameter", "invalid parameter")
InvalidImage = _error("InvalidImage", 400, "invalid_image", "the body is not a decodable image")
InvalidBase64 = _error("InvalidBase64", 400, "invalid_base64", "an image is not valid base64")
MalformedMultipart = _error(
    "MalformedMultipart", 400, "malformed_multipart", "the multipart body could not be parsed"
)
NoImages = _error("NoImages", 400, "no_images", "the request holds no image")
Unauthorized = _error("Unauthorized", 401, "unauthorized", "missing or invalid API key")
ModelNotFound = _error("ModelNotFound", 404, "model_not_found", "unknown model")
NotFound = _error("NotFound", 404, "not_found", "not found")
MethodNotAllowed = _error("MethodNotAllowed", 405, "method_not_allowed", "method not allowed")
BodyTooLarge = _error("BodyTooLarge", 413, "body_too_large", "the request body is too large")
ImageTooLarge = _error("ImageTooLarge", 413, "image_too_large", "the image has too many pixels")
TooManyImages = _error("TooManyImages", 413, "too_many_images", "too many images in one request")
UnsupportedMediaType = _error(
    "UnsupportedMediaType", 415, "unsupported_media_type", "unsupported Content-Type"
)
ClientClosed = _error(
    "ClientClosed",
    499,
    "client_closed_request",
    "client closed the request",
    reject_reason="disconnected",
)
InternalError = _error("InternalError", 500, "internal_error", "internal error")
InferenceFailed = _error("InferenceFailed", 500, "inference_failed", "inference failed")
QueueFull = _error(
    "QueueFull",
    503,
    "queue_full",
    "the queue is full, retry later",
    reject_reason="queue_full",
    retry_after_s=1,
)
Draining = _error(
    "Draining",
    503,
    "draining",
    "the service is shutting down",
    reject_reason="draining",
    retry_after_s=5,
)
NotReady = _error("NotReady", 503, "not_ready", "the service is not ready", retry_after_s=5)
Unavailable = _error(
    "Unavailable", 503, "unavailable", "the model worker is not running", retry_after_s=5
)
DeadlineExceeded = _error(
    "DeadlineExceeded",
    504,
    "deadline_exceeded",
    "the request deadline passed before it was computed",
    reject_reason="deadline",
)

_TRANSLATE: list[tuple[type[BaseException], type[ServiceError]]] = [
    (batcher.QueueFull, QueueFull),
    (batcher.Draining, Draining),
    (batcher.WorkerUnavailable, Unavailable),
    (batcher.DeadlineExceeded, DeadlineExceeded),
    (batcher.Cancelled, ClientClosed),
    (batcher.BatchFailed, InferenceFailed),
    (model.ImageTooLargeError, ImageTooLarge),
    (model.ImageDecodeError, InvalidImage),
    (ClientDisconnect, ClientClosed),
]


def to_service_error(exc: BaseException) -> ServiceError:
    """Map any exception onto a ServiceError; unknown ones become an opaque 500."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, RequestValidationError):
        return InvalidParameter(_validation_message(exc))
    if isinstance(exc, StarletteHTTPException):
        return {404: NotFound, 405: MethodNotAllowed}.get(exc.status_code, BadRequest)()
    for source, target in _TRANSLATE:
        if isinstance(exc, source):
            return target()
    return InternalError()


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x not in ("query", "header"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid parameter"


def error_response(err: ServiceError) -> JSONResponse:
    headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s else {}
    if err.status_code == 401:
        headers["WWW-Authenticate"] = "Bearer"
    body = {"error": {"code": err.code, "message": err.message}}
    return JSONResponse(body, status_code=err.status_code, headers=headers)


async def handle_error(request: Request, exc: Exception) -> JSONResponse:
    """The one exception handler: log, count the shed request, answer the JSON error."""
    err = to_service_error(exc)
    if err.status_code == 500:
        log.error(
            "%s %s failed: %s",
            request.method,
            request.url.path,
            err.code,
            exc_info=exc if err is not exc else None,
        )
    model_label = getattr(request.state, "model_label", None)
    metrics = getattr(request.app.state, "metrics", None)
    if err.reject_reason and model_label and metrics is not None:
        metrics.rejected.labels(model=model_label, reason=err.reject_reason).inc()
    return error_response(err)


def install_error_handlers(app: FastAPI) -> None:
    for exc_type in (
        Exception,
        ServiceError,
        RequestValidationError,
        StarletteHTTPException,
        batcher.BatcherError,
        model.ModelError,
        ClientDisconnect,
    ):
        app.add_exception_handler(exc_type, handle_error)
