"""Errors the service answers with, as `{"error": {code, message, field}}`."""

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


class ModelRateLimited(ServiceError):
    status = 429
    code = "upstream_rate_limited"


class QuotaExceeded(ServiceError):
    """A daily cap on jobs (this key's or the deployment's) is reached until the next UTC midnight."""

    status = 429
    code = "quota_exceeded"


class ModelUnavailable(ServiceError):
    status = 503
    code = "upstream_unavailable"


class ModelRefused(ServiceError):
    status = 502
    code = "upstream_error"


class ModelTimedOut(ServiceError):
    status = 504
    code = "upstream_timeout"


class Misconfigured(ServiceError):
    """The deployment is at fault, not the caller, and only its operator can fix it. Each one is
    logged as an error and counted in a metric the template alarms on (zimage.misconfiguration)."""

    status = 503


class InconsistentSettings(Misconfigured):
    """The deployment's parameters contradict each other: nothing is started until they are fixed."""

    code = "inconsistent_settings"


class ModelKeyUnavailable(Misconfigured):
    """The Novita API key cannot be read: no parameter or secret, or the role may not read or decrypt it."""

    code = "upstream_key_unavailable"


class ModelKeyRefused(Misconfigured):
    """Novita refuses the deployment's API key (invalid, revoked, or not allowed this model)."""

    code = "upstream_key_refused"


class ModelBalanceEmpty(Misconfigured):
    """Novita reports the deployment's account has no balance left to pay for a task."""

    code = "upstream_balance_empty"


class RequestExpired(ServiceError):
    """A requested event not started within RequestMaxAgeMinutes (submit by event only)."""

    status = 410
    code = "request_expired"


class WorkflowUnavailable(ServiceError):
    status = 503
    code = "workflow_unavailable"


class JobNotRecorded(WorkflowUnavailable):
    """The upstream made a task, but the job could not be recorded or its workflow started: the
    same answer to the API's caller, but a retry would pay for a second task."""
