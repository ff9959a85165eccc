"""The job as clients read it."""

from __future__ import annotations

import time
from datetime import timedelta

from zimage.models import Job, iso, utc_now


def running_job(*, eta_seconds: int, recorded_seconds_ago: float, **changes) -> Job:
    recorded = utc_now() - timedelta(seconds=recorded_seconds_ago)
    job = Job(
        job_id="img_01JD0000000000000000000000",
        owner="key-1",
        status="processing",
        prompt="a fox",
        size="512*512",
        seed=-1,
        task_id="t-1",
        created_at=iso(recorded),
        updated_at=iso(recorded),
        deadline_at=iso(recorded + timedelta(minutes=4)),
        expires_at=int(time.time()) + 3600,
        progress=40,
        eta_seconds=eta_seconds,
    )
    return job.with_changes(**changes)


def test_the_eta_counts_down_between_polls():
    assert running_job(eta_seconds=9, recorded_seconds_ago=3).to_view()["eta_seconds"] == 6


def test_an_overdue_eta_reads_zero_not_negative():
    assert running_job(eta_seconds=2, recorded_seconds_ago=5).to_view()["eta_seconds"] == 0


def test_the_eta_counts_from_when_the_upstream_said_it_not_from_the_last_write():
    said = iso(utc_now() - timedelta(seconds=3))
    job = running_job(eta_seconds=9, recorded_seconds_ago=0, eta_at=said)

    assert job.to_view()["eta_seconds"] == 6
