"""The CLI follows a job the cheap way: it sleeps on its own side until the job's eta, looks at
where the image will be (an S3 request) until it is there, and only then reads the job, once."""

from __future__ import annotations

import pytest
from zimage_cli.following import LATE_LOOK_SHARE, LOOK_INTERVAL_SECONDS, MIN_READ_GAP_SECONDS, follow, look_interval

from ..conftest import FakeClock

WATCHED = "https://bucket.s3.us-east-1.amazonaws.com/images/img_1?X-Amz-Signature=x"


class Service:
    """A job that ends at `ends_at` (seconds after following starts), its image stored at that
    moment and its record a moment later; `outcome` is how it ends."""

    def __init__(self, clock: FakeClock, *, ends_at: float, outcome: str = "succeeded", record_lag: float = 0.02):
        self.clock, self.started = clock, clock()
        self.ends_at, self.outcome, self.record_lag = ends_at, outcome, record_lag
        self.reads: list[tuple[float, int | None]] = []  # (when, wait asked)
        self.looks: list[float] = []

    def elapsed(self) -> float:
        return self.clock() - self.started

    def job(self) -> dict:
        if self.elapsed() >= self.ends_at + self.record_lag:
            return {"id": "img_1", "status": self.outcome, "links": {"self": "/v1/images/img_1"}}
        left = max(0, round(self.ends_at - self.elapsed()))
        return {"id": "img_1", "status": "processing", "eta_seconds": left, "links": {"image": WATCHED}}

    def get(self, job_id: str, *, wait: int | None = None) -> dict:
        self.reads.append((self.elapsed(), wait))
        if wait and self.job()["status"] == "processing":
            # a held read: answered when the record ends within the hold, else at its end
            ends = self.ends_at + self.record_lag
            held = ends - self.elapsed() if ends - self.elapsed() <= wait else wait
            self.clock.sleep(max(0.001, held + 0.001))
        return self.job()

    def image_ready(self, url: str) -> bool:
        assert url == WATCHED
        self.looks.append(self.elapsed())
        return self.outcome == "succeeded" and self.elapsed() >= self.ends_at


def test_a_job_on_time_costs_one_read(clock):
    service = Service(clock, ends_at=4.3)
    submitted = {"id": "img_1", "status": "queued", "eta_seconds": 4, "links": {"image": WATCHED}}

    job = follow(service, submitted, timeout=60, clock=clock, sleep=clock.sleep)

    assert job["status"] == "succeeded"
    # the client slept until half a second before the eta, looked a few times, then read once
    assert len(service.reads) == 1
    assert service.looks[0] == pytest.approx(3.5)
    assert len(service.looks) == 5
    # seen within one look of the image being stored
    assert service.reads[0][0] - 4.3 <= LOOK_INTERVAL_SECONDS


def test_a_late_job_is_read_now_and_then_and_seen_when_its_image_comes(clock):
    # GIVEN a job said to take 2 s that takes 20 (its eta counts down to 0 and stays there)
    service = Service(clock, ends_at=20.0)

    def job(original=service.job) -> dict:
        told = {"eta_seconds": max(0, round(2 - service.elapsed()))} if service.elapsed() < 20 else {}
        return {**original(), **told}

    service.job = job

    job = follow(service, service.job(), timeout=60, clock=clock, sleep=clock.sleep)

    assert job["status"] == "succeeded"
    # read while late (for what S3 cannot tell) no more than every MIN_READ_GAP_SECONDS, and at
    # the end, right after its image
    gaps = [later - earlier for (earlier, _), (later, _) in zip(service.reads, service.reads[1:], strict=False)]
    assert all(gap >= MIN_READ_GAP_SECONDS - LOOK_INTERVAL_SECONDS for gap in gaps[:-1])
    assert 2 <= len(service.reads) <= 5
    # looked at less and less often as it grew late: its lag a share of its lateness, not one look
    # every LOOK_INTERVAL_SECONDS through 18 s
    assert service.reads[-1][0] - 20.0 <= LATE_LOOK_SHARE * (20.0 - 2.0)
    assert len(service.looks) < (20.0 - 1.5) / LOOK_INTERVAL_SECONDS / 2


def test_a_failed_job_is_told_by_a_read(clock):
    # GIVEN a job that fails at 3 s: no image ever comes
    service = Service(clock, ends_at=3.0, outcome="failed")

    job = follow(service, service.job(), timeout=60, clock=clock, sleep=clock.sleep)

    assert job["status"] == "failed"
    # read once, when the looks (from half a second before its eta) have found no image for a while
    assert service.reads[-1][0] <= 3.0 - 0.5 + MIN_READ_GAP_SECONDS
    assert len(service.reads) == 1


def test_the_image_seen_before_its_record_is_waited_for_by_a_held_read(clock):
    service = Service(clock, ends_at=1.0, record_lag=0.3)
    job = follow(service, service.job(), timeout=60, clock=clock, sleep=clock.sleep)
    assert job["status"] == "succeeded"
    assert [wait for _, wait in service.reads] == [1]


def test_without_an_image_link_the_job_is_read_held(clock):
    service = Service(clock, ends_at=3.2)
    service.job = lambda original=service.job: {**original(), "links": {"self": "/v1/images/img_1"}}

    job = follow(service, service.job(), timeout=60, clock=clock, sleep=clock.sleep)

    assert job["status"] == "succeeded" and not service.looks
    assert all(wait == 1 for _, wait in service.reads)


def test_following_stops_at_its_timeout(clock):
    service = Service(clock, ends_at=100.0)
    job = follow(service, service.job(), timeout=12, clock=clock, sleep=clock.sleep)
    assert job["status"] == "processing"
    assert service.elapsed() <= 12 + LOOK_INTERVAL_SECONDS + 1


@pytest.mark.parametrize(
    ("answer", "ready"), [(206, True), (200, True), (403, False), (404, False), (503, False), ("refused", False)]
)
def test_a_look_asks_for_one_byte_and_any_failure_means_not_yet(monkeypatch, answer, ready):
    from types import SimpleNamespace

    import urllib3
    from zimage_cli.client import ImageApi

    asked = []

    def request(method, url, **kwargs):
        asked.append((method, kwargs["headers"], kwargs["retries"]))
        if answer == "refused":
            raise urllib3.exceptions.NewConnectionError(None, "refused")
        return SimpleNamespace(status=answer)

    api = ImageApi("http://127.0.0.1:1", "key")
    monkeypatch.setattr(api._http, "request", request)

    assert api.image_ready(WATCHED) is ready
    assert asked == [("GET", {"Range": "bytes=0-0"}, False)]  # no API key sent to S3, never retried


def test_looks_thin_out_as_a_job_grows_late():
    assert look_interval(-1.0) == look_interval(0.0) == LOOK_INTERVAL_SECONDS
    assert look_interval(4.0) == LATE_LOOK_SHARE * 4.0
