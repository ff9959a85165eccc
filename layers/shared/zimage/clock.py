"""Time as the service writes it: UTC, ISO 8601 with milliseconds."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def epoch_seconds(stamp: str) -> float:
    """The moment an `iso()` string names, as time.time() counts it (3.11 reads no trailing Z)."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
