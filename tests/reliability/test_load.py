"""A bounded load run on loopback: 200 jobs at once, every one ends once, no task twice."""

from __future__ import annotations

from local.reliability import run_load


def test_two_hundred_concurrent_jobs_all_end_once(stack, emulator):
    result = run_load(stack, jobs=200)

    assert result["accepted"] == result["distinct_ids"] == 200
    assert result["lost"] == 0
    assert result["succeeded"] == 200
    assert result["upstream_tasks"] == 200
    assert result["upstream_tasks_started_twice"] == 0
