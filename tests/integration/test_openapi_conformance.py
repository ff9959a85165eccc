"""schemathesis against the local stack: requests generated from openapi.json, answers checked
against it. No 5xx, and every status code, content type, header and body as documented."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.failures import FailureGroup

from local.openapi import DOCUMENT
from local.stack import DEV_API_KEY

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
]
SCHEMA = schemathesis.openapi.from_dict(json.loads(DOCUMENT.read_text()))
# schemathesis's own pytest plugin does not run on this pytest yet, so each operation's
# strategy is driven by hypothesis directly.
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_answer_conforms_to_the_document(operation, stack, emulator):
    @given(case=operation.as_strategy())
    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def exchange(case):
        case.call_and_validate(base_url=stack.api_url, headers={"x-api-key": DEV_API_KEY}, checks=CHECKS)

    exchange()


# --- The headers the document declares, on answers that carry them --------------------------------
# Random cases rarely reach these answers (a valid Prefer, an upstream 429), so each is made on
# purpose, checked against the document, then checked again with the header broken: the check
# must see the difference, or the declaration means nothing.

LIMITED = {"status": 429, "headers": {"Retry-After": "1"}, "body": {"code": 429, "reason": "RATE_LIMIT_EXCEEDED"}}


def exchange(stack, path: str, method: str, **case_fields):
    case = SCHEMA[path][method].Case(**case_fields)
    return case, case.call(base_url=stack.api_url, headers={"x-api-key": DEV_API_KEY})


def assert_refused_when_broken(case, response, header: str, value: str | None) -> None:
    """The same answer with `header` removed (value None) or set to `value` fails the header check."""
    if value is None:
        response.headers.pop(header.lower())
    else:
        response.headers[header.lower()] = [value]
    with pytest.raises(FailureGroup) as refused:
        case.validate_response(response, checks=[checks.response_headers_conformance])
    # A missing header is named; a wrong one is quoted with its value.
    assert (header if value is None else f'"{value}"') in str(refused.value)


@pytest.mark.parametrize(
    ("prefer", "status", "header", "bad_value"),
    [
        (None, 202, "Location", None),
        (None, 202, "Location", "/v1/images/not-an-id"),
        ("wait=10", 200, "Location", None),
        ("wait=10", 200, "Preference-Applied", None),
        ("wait=10", 200, "Preference-Applied", "wait=99"),
    ],
)
def test_a_submit_carries_its_declared_headers(stack, emulator, prefer, status, header, bad_value):
    # GIVEN a submit that ends as `status`
    headers = {"Content-Type": "application/json", **({"Prefer": prefer} if prefer else {})}

    # WHEN it is made
    case, response = exchange(stack, "/v1/images", "POST", body={"prompt": "a red fox"}, headers=headers)

    # THEN the answer conforms, and the same answer without the header (or with a wrong one) does not
    assert response.status_code == status, response.content
    case.validate_response(response, checks=CHECKS)
    assert_refused_when_broken(case, response, header, bad_value)


def test_a_read_that_waited_says_so_in_a_declared_header(stack, emulator, api):
    job = api.submit()

    case, response = exchange(
        stack, "/v1/images/{job_id}", "GET", path_parameters={"job_id": job["id"]}, headers={"Prefer": "wait=10"}
    )

    assert response.status_code == 200
    assert response.headers["preference-applied"] == ["wait=10"]
    case.validate_response(response, checks=CHECKS)
    assert_refused_when_broken(case, response, "Preference-Applied", "wait=0")


def test_an_upstream_rate_limit_carries_a_declared_retry_after(stack, emulator):
    emulator.script("submit", LIMITED, LIMITED, LIMITED)

    case, response = exchange(
        stack, "/v1/images", "POST", body={"prompt": "a red fox"}, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 429
    case.validate_response(response, checks=CHECKS)
    assert_refused_when_broken(case, response, "Retry-After", "soon")


def test_every_route_documents_the_gateways_403_and_429():
    # API Gateway answers these before the function runs, so the local stack never shows a 429.
    # Every route has the stage's rate limit; only a route that needs a key can be refused one.
    for path, operations in SCHEMA.raw_schema["paths"].items():
        for method, operation in operations.items():
            needs_a_key = operation.get("security", SCHEMA.raw_schema["security"]) != []
            expected = {"403", "429"} if needs_a_key else {"429"}
            assert expected <= set(operation["responses"]), f"{method.upper()} {path}"
            assert needs_a_key or "403" not in operation["responses"], f"{method.upper()} {path}"
