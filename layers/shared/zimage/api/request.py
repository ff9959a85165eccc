"""The API's request: the body of POST /v1/images as a pydantic model (it validates requests and
documents them in the OpenAPI document), its validation errors told the way a caller can act
on, and the inputs that are not the body (headers, query values, cursors), each parsed to a
clean value or an InvalidRequest naming what to fix."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zimage.errors import InvalidRequest
from zimage.images.size import MAX_SIDE, MIN_SIDE, parse_size
from zimage.jobs.model import JOB_ID, STATUSES

MAX_SEED = 2_147_483_647


MAX_PROMPT_CHARS = 4000


MAX_URL_CHARS = 2048


# The caller's own keys and values, carried unchanged with the job to every view and event.
MAX_METADATA_KEYS = 16
MAX_METADATA_VALUE_CHARS = 512
METADATA_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


# C0 controls and DEL, except tab, line feed and carriage return, which prompts may hold.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CreateImageRequest(BaseModel):
    """Body of POST /v1/images. The checks are Novita's own limits, so a request that passes
    here is never refused upstream for its shape."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        min_length=1,
        description=f"What to draw: 1..{MAX_PROMPT_CHARS} characters after trimming white space.",
        examples=["a red fox in snow, watercolor"],
    )
    size: str = Field(
        default="1024*1024",
        pattern=r"^[0-9]{3,4}\*[0-9]{3,4}$",
        description=f"`W*H` in pixels, each side {MIN_SIDE}..{MAX_SIDE}.",
        examples=["1024*768"],
    )
    seed: int = Field(
        default=-1, ge=-1, le=MAX_SEED, description=f"-1..{MAX_SEED}; -1 picks a random seed.", examples=[7]
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An https URL on a public host; the final job is POSTed there, signed (Standard Webhooks).",
        examples=["https://example.com/hooks/zimage"],
    )
    metadata: dict[str, str] | None = Field(
        default=None,
        description=f"Your own facts about the job (a record id, say): at most {MAX_METADATA_KEYS} keys of "
        f"1..64 characters `A-Za-z0-9_.-`, string values of at most {MAX_METADATA_VALUE_CHARS} characters. "
        "Returned unchanged with the job, in its events and in its webhook.",
        examples=[{"order": "A-1042", "customer": "c_77"}],
    )

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"prompt must be a string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            raise ValueError("prompt must not be empty or only white space")
        if len(text) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt must be at most {MAX_PROMPT_CHARS} characters, got {len(text)}")
        if _CONTROL.search(text):
            raise ValueError("prompt must not contain control characters (tab and line breaks are allowed)")
        return text

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f'size must be a string such as "1024*768", got {type(value).__name__}')
        width, height = parse_size(value)
        return f"{width}*{height}"

    @field_validator("seed", mode="before")
    @classmethod
    def _seed(cls, value: Any) -> int:
        # bool is an int in Python, and 7.0 would pass a lax int check: neither is a seed.
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"seed must be an integer from -1 to {MAX_SEED}, got {_describe(value)}")
        if not -1 <= value <= MAX_SEED:
            raise ValueError(f"seed must be an integer from -1 to {MAX_SEED}, got {value}")
        return value

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _webhook_url(cls, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"webhook_url must be a string, got {type(value).__name__}")
        if len(value) > MAX_URL_CHARS:
            raise ValueError(f"webhook_url must be at most {MAX_URL_CHARS} characters")
        return value.strip()

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> dict[str, str] | None:
        return check_metadata(value)

    @property
    def dimensions(self) -> tuple[int, int]:
        return parse_size(self.size)


def check_metadata(value: Any) -> dict[str, str] | None:
    """The metadata as given, or a ValueError that says which key or value is wrong."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(f"metadata must be an object of string values, got {_describe(value)}")
    if len(value) > MAX_METADATA_KEYS:
        raise ValueError(f"metadata must have at most {MAX_METADATA_KEYS} keys, got {len(value)}")
    for key, item in value.items():
        if not METADATA_KEY.match(key):
            raise ValueError(f"metadata keys must be 1..64 characters of A-Za-z0-9_.-, got {key[:70]!r}")
        if not isinstance(item, str):
            raise ValueError(f"metadata values must be strings, got {_describe(item)} for {key!r}")
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(
                f"metadata values must be at most {MAX_METADATA_VALUE_CHARS} characters, got {len(item)} for {key!r}"
            )
    return dict(value)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"a number with a fraction ({value!r})"
    return type(value).__name__ if not isinstance(value, str) else f"a string ({value[:20]!r})"


_FIELDS = ", ".join(CreateImageRequest.model_fields)


def describe_validation_error(problems: Sequence[Any]) -> tuple[str, str | None]:
    """The first problem as (message, field)."""
    if not problems:
        return "the request is not valid", None
    problem = problems[0]
    kind = problem.get("type", "")
    location = [str(part) for part in problem.get("loc", ()) if part not in ("body",)]
    field = location[-1] if location and not location[-1].isdigit() else None
    if kind == "json_invalid":
        return "the body is not valid JSON", None
    if kind in ("model_attributes_type", "dict_type", "model_type") or (kind == "missing" and field is None):
        return 'the body must be a JSON object such as {"prompt": "a red fox"}', None
    if kind == "missing":
        return f"{field} is required", field
    if kind == "extra_forbidden":
        return f"unknown field {field!r}; the fields are {_FIELDS}", field
    message = str(problem.get("msg", "is not valid"))
    message = message.removeprefix("Value error, ")
    return (message if field and message.startswith(field) else f"{field or 'body'}: {message}"), field


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
