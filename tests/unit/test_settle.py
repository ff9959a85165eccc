"""Completion events of jobs a Lambda ends (a cancel, a settle) are never lost: a job stays in
the active index until its event is out, and the sweeper sends the ones that did not go."""

from __future__ import annotations

import json
from datetime import timedelta

from zimage.events import announce
from zimage.models import active_shard_for, utc_now
from zimage.settle import settle_if_stale, sweep

from .conftest import a_job


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
    job = a_job(at=deadline - timedelta(minutes=4), status="processing")
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
    assert sweep(jobs=jobs, events_client=bus, bus_name="b") == (0, 1)
    assert bus.detail_types(job.job_id) == ["Image Generation Canceled"]
    assert jobs.get(job.job_id).active_shard is None
    assert sweep(jobs=jobs, events_client=bus, bus_name="b") == (0, 0)  # sent once only


def test_a_sent_event_takes_the_job_out_of_the_sweepers_sight(jobs):
    job = an_active_job(jobs)
    canceled, _ = jobs.cancel(job.job_id)
    bus = EventBus()

    assert announce(canceled, jobs=jobs, events_client=bus, bus_name="b")
    assert sweep(jobs=jobs, events_client=bus, bus_name="b") == (0, 0)
    assert bus.detail_types(job.job_id) == ["Image Generation Canceled"]


def test_a_settled_job_whose_event_failed_is_announced_later_and_failed_once(jobs):
    job = an_active_job(jobs)
    bus = EventBus(down=True)

    settled = settle_if_stale(job, jobs=jobs, events_client=bus, bus_name="b")
    bus.down = False
    counts = sweep(jobs=jobs, events_client=bus, bus_name="b")

    assert settled.status == "failed"
    assert counts == (0, 1)
    assert bus.detail_types(job.job_id) == ["Image Generation Failed"]


def test_jobs_the_workflow_fails_leave_the_index_at_once(jobs):
    # The workflow sends their events itself (EmitFailed), so the sweeper must not send another.
    job = an_active_job(jobs)
    jobs.record_failure(job.job_id, code="upstream_failed", message="nsfw")
    bus = EventBus()

    assert jobs.get(job.job_id).active_shard is None
    assert sweep(jobs=jobs, events_client=bus, bus_name="b") == (0, 0)
    assert bus.sent == []
