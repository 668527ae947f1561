"""Every error the service answers with: one class each, with its HTTP status and stable code.

Front ends render them (``service/front/errors.py`` for HTTP); the batcher and the served
model raise them. Messages are ours and safe to show: an internal exception's text never
reaches the client (it goes to the log).
"""

from __future__ import annotations


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


# -- 4xx: the client's request ------------------------------------------------------------
class BadRequest(ServiceError):
    status_code, code, default_message = 400, "bad_request", "bad request"


class InvalidParameter(ServiceError):
    status_code, code, default_message = 400, "invalid_parameter", "invalid parameter"


class InvalidImage(ServiceError):
    status_code, code, default_message = 400, "invalid_image", "the body is not a decodable image"


class InvalidBase64(ServiceError):
    status_code, code, default_message = 400, "invalid_base64", "an image is not valid base64"


class MalformedMultipart(ServiceError):
    status_code, code = 400, "malformed_multipart"
    default_message = "the multipart body could not be parsed"


class NoImages(ServiceError):
    status_code, code, default_message = 400, "no_images", "the request holds no image"


class Unauthorized(ServiceError):
    status_code, code, default_message = 401, "unauthorized", "missing or invalid API key"


class NotFound(ServiceError):
    status_code, code, default_message = 404, "not_found", "not found"


class ModelNotFound(NotFound):
    code, default_message = "model_not_found", "unknown model"


class MethodNotAllowed(ServiceError):
    status_code, code, default_message = 405, "method_not_allowed", "method not allowed"


class ExplainDisabled(ServiceError):
    status_code, code = 501, "explain_disabled"
    default_message = "explanations are off for this model (SANET_EXPLAIN, or the null backend)"


class RequestTimeout(ServiceError):
    """The body did not arrive before the request's deadline (a slow or stalled upload)."""

    status_code, code = 408, "request_timeout"
    default_message = "the request body did not arrive before the deadline"
    reject_reason = "deadline"


class BodyTooLarge(ServiceError):
    status_code, code, default_message = 413, "body_too_large", "the request body is too large"


class ImageTooLarge(ServiceError):
    status_code, code, default_message = 413, "image_too_large", "the image has too many pixels"


class TooManyImages(ServiceError):
    status_code, code = 413, "too_many_images"
    default_message = "too many images in one request"


class HeadersTooLarge(ServiceError):
    status_code, code = 431, "headers_too_large"
    default_message = "the request line and headers are too large"


class UnsupportedMediaType(ServiceError):
    status_code, code, default_message = 415, "unsupported_media_type", "unsupported Content-Type"


class ClientClosed(ServiceError):
    """The client went away before its answer (nginx's 499); its work is dropped."""

    status_code, code, default_message = 499, "client_closed_request", "client closed the request"
    reject_reason = "disconnected"


# -- 5xx: ours ----------------------------------------------------------------------------
class InternalError(ServiceError):
    pass


class InferenceFailed(ServiceError):
    """The model raised on a batch; every request in that batch gets this."""

    code, default_message = "inference_failed", "inference failed"


class OutputMismatch(InferenceFailed):
    """The engine returned a different number of outputs than it was given images."""


class QueueFull(ServiceError):
    status_code, code, default_message = 503, "queue_full", "the queue is full, retry later"
    reject_reason, retry_after_s = "queue_full", 1


class Draining(ServiceError):
    status_code, code, default_message = 503, "draining", "the service is shutting down"
    reject_reason, retry_after_s = "draining", 5


class TooManyConnections(ServiceError):
    """Answered by the server itself when SANET_MAX_CONNECTIONS connections are open."""

    status_code, code = 503, "too_many_connections"
    default_message = "too many open connections, retry later"
    retry_after_s = 1


class NotReady(ServiceError):
    status_code, code, default_message = 503, "not_ready", "the service is not ready"
    retry_after_s = 5


class Unavailable(ServiceError):
    """The inference worker is not running (died); readiness is false."""

    status_code, code = 503, "unavailable"
    default_message = "the model worker is not running"
    retry_after_s = 5


class ExplainUnavailable(ServiceError):
    """The network explanations run on could not be built (the engine logs why); the next
    explanation after ``retry_after_s`` builds it again."""

    status_code, code = 503, "explain_unavailable"
    default_message = "the network for explanations could not be built, retry later"
    retry_after_s = 30


class DeadlineExceeded(ServiceError):
    status_code, code = 504, "deadline_exceeded"
    default_message = "the request deadline passed before it was computed"
    reject_reason = "deadline"
