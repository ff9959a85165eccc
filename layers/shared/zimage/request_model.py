"""The body of POST /v1/images, as a pydantic model: it validates requests and documents them in
the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from zimage.models import MAX_PROMPT_CHARS, MAX_SEED, MAX_SIDE, MAX_URL_CHARS, MIN_SIDE, parse_size

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

    @property
    def dimensions(self) -> tuple[int, int]:
        return parse_size(self.size)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return f"a number with a fraction ({value!r})"
    return type(value).__name__ if not isinstance(value, str) else f"a string ({value[:20]!r})"
