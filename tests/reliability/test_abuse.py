"""The abuse battery: hostile and malformed requests over HTTP. Each is a 4xx in the error
model (API Gateway's own 403 only for a missing or unknown key), none reaches the upstream or
leaves a job, and the service still works afterwards."""

from __future__ import annotations

import re

import pytest

from reliability.scenarios import AbuseResult, run_abuse

SNAKE_CASE = re.compile(r"[a-z]+(_[a-z]+)*")


@pytest.fixture(scope="module")
def battery(stack) -> tuple[list[AbuseResult], dict]:
    stack.emulator.reset()
    try:
        return run_abuse(stack)
    finally:
        stack.emulator.reset()


def test_forty_and_more_hostile_requests_are_played(battery):
    results, _ = battery

    assert len(results) >= 40
    assert len({r.name for r in results}) == len(results)


def test_every_answer_is_a_4xx_and_none_reaches_the_upstream_or_makes_a_job(battery):
    results, left = battery

    assert [(r.name, r.status) for r in results if not 400 <= r.status < 500] == []
    assert [(r.name, r.upstream_calls, r.jobs_created) for r in results if r.upstream_calls or r.jobs_created] == []
    assert left == {"upstream_calls": 0, "jobs_left": 0, "healthy_after": True}


def test_every_answer_of_the_service_is_exactly_the_error_model(battery):
    results, _ = battery

    for result in (r for r in results if not r.request.bad_key):
        body, name = result.body, result.name
        assert isinstance(body, dict) and set(body) == {"error"}, (name, body)
        error = body["error"]
        assert set(error) <= {"code", "message", "field"}, (name, error)
        assert isinstance(error["code"], str) and SNAKE_CASE.fullmatch(error["code"]), (name, error)
        assert isinstance(error["message"], str) and error["message"].strip(), (name, error)
        assert error.get("field") == result.request.field, (name, error)


def test_only_a_missing_or_unknown_key_gets_api_gateways_forbidden(battery):
    results, _ = battery

    bad_key = [r for r in results if r.request.bad_key]
    assert len(bad_key) >= 5
    assert [(r.name, r.status, r.body) for r in bad_key if (r.status, r.body) != (403, {"message": "Forbidden"})] == []
    assert [r.name for r in results if r.status == 403 and not r.request.bad_key] == []
