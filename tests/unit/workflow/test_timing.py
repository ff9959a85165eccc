"""The job's deadline and every bound of a turn follow from two settings (zimage.workflow.timing); what
CloudFormation cannot refuse, the service refuses at run time."""

from __future__ import annotations

import re

import pytest

from zimage import errors
from zimage.settings import Settings
from zimage.workflow.timing import (
    EVENT_RESERVE_SECONDS,
    SHORTEST_TURN_SECONDS,
    STORE_RESERVE_SECONDS,
    WorkflowTiming,
    calls_end,
    stale_after_deadline_seconds,
    workflow_timing,
)


def test_the_deadline_leaves_a_whole_turn_and_the_event_before_the_hard_timeout():
    timing = workflow_timing(execution_timeout_seconds=290, poll_turn_seconds=60, workflow_type="EXPRESS")

    assert timing.poll_deadline_seconds == 290 - 60 - EVENT_RESERVE_SECONDS == 220


def test_the_defaults_are_consistent(monkeypatch):
    for name in ("EXECUTION_TIMEOUT_SECONDS", "POLL_TURN_SECONDS", "MIN_WAIT_SECONDS", "MAX_WAIT_SECONDS"):
        monkeypatch.delenv(name, raising=False)  # a local stack in this process sets its own

    timing = Settings.from_env().workflow_timing()

    assert timing == WorkflowTiming(290, 60)


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"execution_timeout_seconds": 600, "workflow_type": "EXPRESS"}, "an EXPRESS execution lasts 300 s at most"),
        ({"execution_timeout_seconds": 60, "poll_turn_seconds": 60}, "leaves no time to poll"),
        ({"execution_timeout_seconds": 70, "poll_turn_seconds": 60}, "leaves no time to poll"),
        ({"min_wait_seconds": 40, "max_wait_seconds": 30}, "MinWaitSeconds (40) is above MaxWaitSeconds (30)"),
        ({"poll_turn_seconds": 8}, "PollTurnSeconds (8) leaves no time to store an image"),
    ],
)
def test_contradicting_settings_are_refused_naming_the_contradiction(settings, problem):
    arguments = {"execution_timeout_seconds": 290, "poll_turn_seconds": 60, "workflow_type": "EXPRESS", **settings}

    with pytest.raises(errors.InconsistentSettings, match=re.escape(problem)) as refused:
        workflow_timing(**arguments)

    assert refused.value.status == 503 and refused.value.code == "inconsistent_settings"


def test_the_shortest_turn_the_template_allows_can_store_an_image():
    from local.template import load_template

    shortest = load_template()["Parameters"]["PollTurnSeconds"]["MinValue"]

    assert shortest >= SHORTEST_TURN_SECONDS
    workflow_timing(execution_timeout_seconds=290, poll_turn_seconds=shortest, workflow_type="EXPRESS")


def test_a_standard_workflow_may_run_for_hours():
    timing = workflow_timing(execution_timeout_seconds=3600, poll_turn_seconds=60, workflow_type="STANDARD")

    assert timing.poll_deadline_seconds == 3530


def test_a_turns_calls_end_by_the_earliest_of_its_bounds_less_the_time_to_store():
    # the turn's own length
    assert calls_end(turn_started=100, poll_turn_seconds=60, execution_deadline=1000) == 160 - STORE_RESERVE_SECONDS
    # the execution's, less the time kept for its event
    assert calls_end(turn_started=100, poll_turn_seconds=60, execution_deadline=130) == 120 - STORE_RESERVE_SECONDS
    # the function's own timeout
    ends = calls_end(turn_started=100, poll_turn_seconds=60, execution_deadline=1000, function_ends_at=110)
    assert ends == 110 - STORE_RESERVE_SECONDS


def test_a_turn_started_before_the_deadline_has_the_whole_turn_for_its_calls():
    timing = WorkflowTiming(290, 60)
    submitted = 1000.0
    deadline, execution_deadline = submitted + timing.poll_deadline_seconds, submitted + 290

    ends = calls_end(turn_started=deadline - 0.1, poll_turn_seconds=60, execution_deadline=execution_deadline)

    assert ends == pytest.approx(deadline - 0.1 + 60 - STORE_RESERVE_SECONDS)


def test_the_sweeper_waits_until_the_execution_surely_ended():
    timing = WorkflowTiming(290, 60)

    # past the deadline: the last turn, then the event; the execution's hard timeout is later still
    assert stale_after_deadline_seconds(60) > 290 - timing.poll_deadline_seconds
