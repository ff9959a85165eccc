"""The abuse battery: hostile and malformed requests over HTTP. Each is a 4xx in the error
model, none reaches the upstream or leaves a job, and the service still works afterwards."""

from __future__ import annotations

from local.reliability import run_abuse


def test_forty_and_more_hostile_requests_are_refused_cleanly(stack, emulator):
    results, left = run_abuse(stack)

    assert len(results) >= 40
    refused_badly = [r for r in results if not 400 <= r.status < 500]
    assert refused_badly == []
    gateway = {"Forbidden", "Missing Authentication Token", "Request Header Fields Too Large"}
    assert all(r.code and (r.code in gateway or r.code.islower()) for r in results), results
    assert left == {"upstream_calls": 0, "jobs_left": 0, "healthy_after": True}
