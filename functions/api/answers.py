"""The API's JSON answers, made one way for every route and error handler."""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types


def json_response(status: int, body: dict, headers: dict | None = None) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)
