"""Following a job the cheapest way that keeps its latency.

A read of the job is an API Gateway request and a Lambda call, and a read the service holds
(`Prefer: wait`) bills the held Lambda by the millisecond. A look at where the job's image will be
(`links.image`, a presigned S3 URL) is an S3 request, which costs about a tenth of a read, and
a client sleeping on its own side costs nothing. So the client sleeps until the job is expected to
end (its `eta_seconds`, the upstream's or the service's estimate, less the second etas are rounded
by), then looks at the image's URL a few times a second until the image is there, and only then
reads the job: the one read its end needs anyway. S3 never tells that a job failed, so while no
image comes the job is also read now and then, less often the longer it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TERMINAL = ("succeeded", "failed", "canceled")
# The most one read asks the service to hold (`Prefer: wait`): the job's record is written just
# after its image, so a read made on seeing the image waits only that long.
HOLD_SECONDS = 1
# Etas come in whole seconds, rounded up: a job may end up to a second before its eta says. The
# client looks from this long before it, where a job is as likely to end as not.
LOOK_AHEAD_SECONDS = 0.5
# Without an eta the client sleeps this share of the time the job has run so far, between a
# second and MAX_BLIND_SLEEP_SECONDS.
BLIND_SLEEP_SHARE = 0.25
MAX_BLIND_SLEEP_SECONDS = 5.0
# Between two looks at the image's URL: half of it is the client's lag behind the job's end.
LOOK_INTERVAL_SECONDS = 0.25
# Past the end it was expected at, a job is looked at after this share of how late it is: a slow
# job's lag stays small next to its own lateness, and it costs a few looks instead of many.
LATE_LOOK_SHARE = 0.5
# While the image does not come, the job is read after this share of the time it has run so far,
# and at least this often: what S3 cannot tell (a failure, a cancel, a new eta) is seen that late.
READ_GAP_SHARE = 0.5
MIN_READ_GAP_SECONDS = 5.0


def sleep_before_looking(job: dict, followed_for: float) -> float:
    """How long to sleep before the next look at a job still running: until the middle of the
    second its eta names (etas are rounded to whole seconds), or, with no eta, a share of how long
    it has run."""
    eta = job.get("eta_seconds")
    if eta:
        return max(0.0, eta - LOOK_AHEAD_SECONDS)
    if eta == 0 and job.get("links", {}).get("image"):
        return 0.0  # due now: looking costs next to nothing
    return min(max(1.0, followed_for * BLIND_SLEEP_SHARE), MAX_BLIND_SLEEP_SECONDS)


def read_gap(followed_for: float) -> float:
    """How long to look at the image's URL before reading the job again."""
    return max(MIN_READ_GAP_SECONDS, followed_for * READ_GAP_SHARE)


def follow(
    api: Any,
    job: dict,
    *,
    timeout: float,
    on_change: Callable[[dict], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Follow the job until it ends or `timeout` passes; `on_change` sees every new status,
    progress or eta it reads. `api` needs `get(job_id, wait=seconds)` and `image_ready(url)`."""
    started = clock()
    deadline = started + timeout
    last = None
    image_seen = False
    expected_at = None  # when the job was last said to end, by the client's clock
    while True:
        shown = (job["status"], job.get("progress"), job.get("eta_seconds"))
        if on_change and shown != last:
            on_change(job)
            last = shown
        if job["status"] in TERMINAL or deadline <= clock():
            return job
        if image_seen:  # only the job's record is still to come; a service that held no read is not hammered
            sleep(min(LOOK_INTERVAL_SECONDS, max(0.0, deadline - clock())))
        else:
            if job.get("eta_seconds"):  # a late job's eta counts down to 0 and says no more
                expected_at = clock() + job["eta_seconds"]  # rounded up: late only past it
            sleep(min(sleep_before_looking(job, clock() - started), max(0.0, deadline - clock())))
            watched = job.get("links", {}).get("image")
            if watched:
                expected_at = expected_at or clock()
                looks_end = min(deadline, clock() + read_gap(clock() - started))
                image_seen = _look_until(api, watched, looks_end, expected_at, clock=clock, sleep=sleep)
        left = deadline - clock()
        if left <= 0:
            return job
        job = api.get(job["id"], wait=max(1, min(HOLD_SECONDS, int(left))))


def look_interval(late_by: float) -> float:
    """Seconds to the next look at the image's URL, for a job `late_by` seconds past its expected end."""
    return max(LOOK_INTERVAL_SECONDS, LATE_LOOK_SHARE * late_by)


def _look_until(
    api: Any,
    url: str,
    until: float,
    expected_at: float,
    *,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> bool:
    """Look at the image's URL until the image is there (True) or `until` passes (False)."""
    while True:
        if api.image_ready(url):
            return True
        interval = look_interval(clock() - expected_at)
        if clock() + interval >= until:
            sleep(max(0.0, until - clock()))  # the read is due then, not earlier
            return False
        sleep(interval)
