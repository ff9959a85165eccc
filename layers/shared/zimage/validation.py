"""Pydantic's validation errors, told the way a caller can act on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zimage.request_model import CreateImageRequest

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
