"""Errors the service answers with, and errors the upstream raises."""

from __future__ import annotations


class ServiceError(Exception):
    """An error answered to the API caller as `{"error": {"code", "message", "field"}}`."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


class InvalidRequest(ServiceError):
    status = 400
    code = "invalid_request"


class JobNotFound(ServiceError):
    status = 404
    code = "not_found"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status = 415
    code = "unsupported_media_type"


class UpstreamRateLimitedError(ServiceError):
    status = 429
    code = "upstream_rate_limited"


class UpstreamUnavailableError(ServiceError):
    status = 503
    code = "upstream_unavailable"


class UpstreamBadGatewayError(ServiceError):
    status = 502
    code = "upstream_error"


class UpstreamTimeoutError(ServiceError):
    status = 504
    code = "upstream_timeout"


class InconsistentSettings(ServiceError):
    """The deployment's parameters contradict each other: nothing is started until they are fixed."""

    status = 503
    code = "inconsistent_settings"


class WorkflowUnavailable(ServiceError):
    status = 503
    code = "workflow_unavailable"


# --- Raised by the Novita client -------------------------------------------------------------


class UpstreamError(Exception):
    """Novita answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


class UpstreamRejected(UpstreamError):
    """A 4xx that retrying will not fix (bad request, bad key, no balance, unknown task)."""


class UpstreamRateLimited(UpstreamError):
    """429: no task was created. `retry_after` is in seconds when the upstream said so."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = 429, reason: str = ""):
        super().__init__(message, status=status, reason=reason)
        self.retry_after = retry_after


class UpstreamUnavailable(UpstreamError):
    """5xx, connection error, timeout or a garbled answer, still failing after the retries."""


class UpstreamTimeout(UpstreamUnavailable):
    """The request was sent but no whole answer came back (read timeout, connection lost): the
    upstream may have acted on it."""


class InvalidImage(Exception):
    """The upstream's image is not what was asked for (type, size, bytes)."""
