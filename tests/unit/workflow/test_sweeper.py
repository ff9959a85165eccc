"""Completion events of jobs a Lambda ends (a cancel, a settle) are never lost: a job stays in
the active index until its event is out, and the sweeper sends the ones that did not go."""

from __future__ import annotations

import json
from datetime import timedelta

from zimage.clock import iso, utc_now
from zimage.jobs.events import announce
from zimage.jobs.model import active_shard_for
from zimage.workflow.sweeper import settle_if_stale, sweep
from zimage.workflow.timing import EVENT_RESERVE_SECONDS, stale_after_deadline_seconds

from ..conftest import a_job

STALE_AFTER = stale_after_deadline_seconds(60)  # the default PollTurnSeconds


class EventBus:
    """put_events that refuses while `down`, and keeps what it accepted."""

    def __init__(self, *, down: bool = False):
        self.down = down
        self.sent: list[dict] = []

    def put_events(self, Entries: list[dict]) -> dict:  # boto3's own argument name
        if self.down:
            raise ConnectionError("EventBridge unreachable")
        self.sent += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]}

    def detail_types(self, job_id: str) -> list[str]:
        return [entry["DetailType"] for entry in self.sent if json.loads(entry["Detail"])["id"] == job_id]


def an_active_job(jobs, *, minutes_past_deadline: int = 10):
    deadline = utc_now() - timedelta(minutes=minutes_past_deadline)
    job = a_job(at=deadline - timedelta(minutes=4), status="processing", deadline_at=iso(deadline))
    job = job.with_changes(active_shard=active_shard_for(job.job_id))
    jobs.create(job)
    return job


def test_a_cancel_whose_event_failed_is_announced_by_the_next_sweep(jobs):
    job = an_active_job(jobs)
    canceled, changed = jobs.cancel(job.job_id)
    bus = EventBus(down=True)

    assert changed and not announce(canceled, jobs=jobs, events_client=bus, bus_name="b")
    assert jobs.get(job.job_id).active_shard is not None  # still listed for the sweeper

    bus.down = False
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER) == (0, 1)
    assert bus.detail_types(job.job_id) == ["Image Generation Canceled"]
    assert jobs.get(job.job_id).active_shard is None
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER) == (
        0,
        0,
    )  # sent once only


def test_a_sent_event_takes_the_job_out_of_the_sweepers_sight(jobs):
    job = an_active_job(jobs)
    canceled, _ = jobs.cancel(job.job_id)
    bus = EventBus()

    assert announce(canceled, jobs=jobs, events_client=bus, bus_name="b")
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER) == (0, 0)
    assert bus.detail_types(job.job_id) == ["Image Generation Canceled"]


def test_a_settled_job_whose_event_failed_is_announced_later_and_failed_once(jobs):
    job = an_active_job(jobs)
    bus = EventBus(down=True)

    settled = settle_if_stale(job, jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER)
    bus.down = False
    counts = sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER)

    assert settled.status == "failed"
    assert counts == (0, 1)
    assert bus.detail_types(job.job_id) == ["Image Generation Failed"]


def test_a_job_the_workflow_ended_stays_listed_until_its_event_is_marked_sent(jobs):
    # GIVEN a job the workflow failed just now, its execution still running
    job = an_active_job(jobs, minutes_past_deadline=0)
    jobs.record_failure(job.job_id, code="upstream_failed", message="nsfw")
    bus = EventBus()

    # THEN it stays in the sweeper's index, but no sweep sends its event while the execution may
    assert jobs.get(job.job_id).active_shard is not None
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=STALE_AFTER) == (0, 0)
    assert bus.sent == []

    # WHEN the workflow's MarkAnnounced state has run (AnnounceFailed sent the event)
    jobs.mark_announced(job.job_id)

    # THEN it leaves the index
    assert jobs.get(job.job_id).active_shard is None


def test_an_ended_job_waits_for_the_sweeper_as_long_as_its_execution_may_still_announce_it():
    """The sweeper must not race an execution that is still inside its last turn or its event."""
    assert STALE_AFTER >= 60 + EVENT_RESERVE_SECONDS
