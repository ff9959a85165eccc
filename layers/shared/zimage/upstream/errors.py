"""What the Novita client raises."""

from __future__ import annotations


class UpstreamError(Exception):
    """Novita answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, reason: str = ""):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason


# Novita's reasons for refusing the account rather than the request (../shared/novita-contract.md).
KEY_REFUSED_REASONS = frozenset(
    {"INVALID_API_KEY", "MISSING_API_KEY", "BILLING_AUTH_FAILED", "FEATURE_NOT_ALLOWED", "API_NOT_ALLOWED"}
)
BALANCE_EMPTY_REASON = "BILLING_BALANCE_NOT_ENOUGH"


class UpstreamRejected(UpstreamError):
    """A 4xx that retrying will not fix (bad request, bad key, no balance, unknown task)."""

    @property
    def refuses_key(self) -> bool:
        """Novita refuses our key, whatever the request (the docs disagree on 401 or 403)."""
        return self.reason in KEY_REFUSED_REASONS or self.status in (401, 403)


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


class UpstreamKeyUnavailable(UpstreamUnavailable):
    """The deployment's Novita API key could not be read, so no request was sent. `aws_error` is the
    AWS error code (ParameterNotFound, AccessDeniedException, ...); never the key itself."""

    def __init__(self, message: str, *, aws_error: str = ""):
        super().__init__(message)
        self.aws_error = aws_error
