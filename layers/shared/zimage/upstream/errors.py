"""What the Novita client raises."""

from __future__ import annotations


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
