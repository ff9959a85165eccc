"""schemathesis against the local stack: requests generated from openapi.json, answers checked
against it. No 5xx, and every status code, content type, header and body as documented."""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

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
