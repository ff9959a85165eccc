"""The local API front renders the template's GatewayResponses the way API Gateway does."""

from __future__ import annotations

import json

from local.api_gateway import GatewayResponses
from local.template import load_template

RESPONSES = GatewayResponses(load_template())


def test_a_crash_of_the_function_is_a_502_in_the_error_model():
    status, headers, body = RESPONSES.refusal(502, "Internal server error")

    assert status == 502
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": {"code": "internal_error", "message": "Internal server error"}}


def test_default_4xx_keeps_the_status_and_quotes_the_message_as_json():
    status, _, body = RESPONSES.refusal(431, 'headers "too" large')

    assert status == 431
    assert json.loads(body) == {"error": {"code": "request_refused", "message": 'headers "too" large'}}


def test_the_key_refusal_is_api_gateways_own_forbidden():
    status, headers, body = RESPONSES.answer("INVALID_API_KEY", "Forbidden")

    assert (status, json.loads(body)) == (403, {"message": "Forbidden"})
    assert headers["x-amzn-ErrorType"] == "ForbiddenException"


def test_a_type_the_template_leaves_out_falls_back_to_api_gateways_own_body():
    bare = GatewayResponses({"Resources": {}})

    status, _, body = bare.answer("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")

    assert (status, json.loads(body)) == (403, {"message": "Missing Authentication Token"})
