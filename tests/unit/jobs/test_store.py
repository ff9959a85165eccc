"""The held read behind `Prefer: wait` (zimage.jobs.store.wait_for_end), on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

from zimage.clock import iso
from zimage.jobs.store import BLIND_READ_SECONDS, wait_for_end

from ..conftest import FakeClock, a_job


def a_held_job(clock: FakeClock, *, ends_after: float, eta_seconds: int):
    """A job whose eta, written at the start, says `eta_seconds`; it really ends `ends_after` on."""
    started = clock.now
    running = a_job(status="processing", eta_seconds=eta_seconds, eta_at=iso_at(started))
    done = running.with_changes(status="succeeded", eta_seconds=None)
    reads = []

    def read():
        reads.append(clock.now - started)
        return done if clock.now - started >= ends_after else running

    return read, reads


def iso_at(epoch: float) -> str:
    return iso(datetime.fromtimestamp(epoch, UTC))


def test_a_job_that_ends_long_before_its_eta_is_answered_within_a_second(clock):
    read, reads = a_held_job(clock, ends_after=2.2, eta_seconds=12)

    job = wait_for_end(read, 20, clock=clock, sleep=clock.sleep, now=clock)

    assert job.status == "succeeded"
    assert reads[-1] - 2.2 <= BLIND_READ_SECONDS  # not held to the eta's end
    assert len(reads) <= 4


def test_a_job_that_ends_on_its_eta_is_read_a_few_times_only(clock):
    read, reads = a_held_job(clock, ends_after=4.6, eta_seconds=5)

    job = wait_for_end(read, 20, clock=clock, sleep=clock.sleep, now=clock)

    assert job.status == "succeeded"
    assert reads[-1] - 4.6 <= 0.25  # past its expected end, looked at every interval
    assert len(reads) <= 8


def test_the_hold_ends_when_its_seconds_pass(clock):
    read, reads = a_held_job(clock, ends_after=60, eta_seconds=50)

    job = wait_for_end(read, 3, clock=clock, sleep=clock.sleep, now=clock)

    assert job.status == "processing"
    assert reads[-1] == 3
