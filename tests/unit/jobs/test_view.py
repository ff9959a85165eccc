"""The job as clients read it."""

from __future__ import annotations

from datetime import timedelta

from zimage.clock import iso, utc_now
from zimage.jobs.model import Job

from ..conftest import a_job


def running_job(*, eta_seconds: int, recorded_seconds_ago: float, **changes) -> Job:
    recorded = utc_now() - timedelta(seconds=recorded_seconds_ago)
    return a_job(at=recorded, status="processing", progress=40, eta_seconds=eta_seconds, **changes)


def test_the_eta_counts_down_between_polls():
    assert running_job(eta_seconds=9, recorded_seconds_ago=3).to_view()["eta_seconds"] == 6


def test_an_overdue_eta_reads_zero_not_negative():
    assert running_job(eta_seconds=2, recorded_seconds_ago=5).to_view()["eta_seconds"] == 0


def test_the_eta_counts_from_when_the_upstream_said_it_not_from_the_last_write():
    said = iso(utc_now() - timedelta(seconds=3))
    job = running_job(eta_seconds=9, recorded_seconds_ago=0, eta_at=said)

    assert job.to_view()["eta_seconds"] == 6
