"""The API's inputs that are not the JSON body: headers, query values and cursors. Each parser
returns a clean value or raises InvalidRequest naming what to fix."""

from __future__ import annotations

import base64
import binascii
import json
import re

from zimage.errors import InvalidRequest
from zimage.models import JOB_ID, STATUSES

MAX_WAIT_SECONDS = 25
MAX_PAGE = 100
DEFAULT_PAGE = 20
_PRINTABLE = re.compile(r"^[\x20-\x7e]{1,255}$")
_WAIT = re.compile(r"(?:^|[;,\s])wait\s*=\s*\"?([0-9]{1,6})\"?", re.IGNORECASE)
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def idempotency_key(value: str | None) -> str | None:
    if value is None:
        return None
    if not _PRINTABLE.match(value):
        raise InvalidRequest("Idempotency-Key must be 1..255 printable ASCII characters", field="Idempotency-Key")
    return value


def preferred_wait(prefer: str | None) -> int | None:
    """`Prefer: wait=N` (RFC 7240). Preferences are hints: one we cannot read is ignored, and a
    wait longer than we hold a request is shortened to MAX_WAIT_SECONDS."""
    match = _WAIT.search(prefer or "")
    if not match:
        return None
    seconds = int(match[1])
    return min(seconds, MAX_WAIT_SECONDS) if seconds >= 1 else None


def page_limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE
    if not re.fullmatch(r"[0-9]{1,3}", value) or not 1 <= int(value) <= MAX_PAGE:
        raise InvalidRequest(f"limit must be an integer from 1 to {MAX_PAGE}, got {value[:20]!r}", field="limit")
    return int(value)


def status_filter(value: str | None) -> str | None:
    if value is None:
        return None
    if value not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}, got {value[:20]!r}", field="status")
    return value


def encode_cursor(key: dict | None) -> str | None:
    if not key:
        return None
    text = json.dumps([key["created_at"], key["job_id"]], separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, owner: str) -> dict | None:
    """The cursor holds where the last page ended: a creation time and a job id of the caller's.
    Anything else, forged or garbled, is refused rather than passed to the database."""
    if cursor is None:
        return None
    try:
        created_at, job_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not (
            isinstance(created_at, str) and _ISO.match(created_at) and isinstance(job_id, str) and JOB_ID.match(job_id)
        ):
            raise ValueError
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("cursor is not one this API gave out; start again without it", field="cursor") from None
    return {"job_id": job_id, "owner": owner, "created_at": created_at}
