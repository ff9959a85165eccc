"""Following a job the cheapest way that keeps its latency.

Every read is an API Gateway request and a Lambda call, and a read the service holds
(`Prefer: wait`) bills the held Lambda by the millisecond, while a client sleeping on its own
side costs nothing. So the client sleeps until the job is expected to end (its `eta_seconds`,
the upstream's or the service's estimate, less the second etas are rounded by), then asks the
service to hold one read for a moment: a job on time is seen the moment its record says so, with
one or two reads in all, and a late one only costs another sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

TERMINAL = ("succeeded", "failed", "canceled")
# The most one read asks the service to hold (`Prefer: wait`): long enough for a job on time to
# end inside it, short enough that a late job is waited for by the client's free sleep instead.
HOLD_SECONDS = 1
# Etas come in whole seconds: a job may end up to this long before its eta says.
ETA_GRANULARITY_SECONDS = 1.0
# Without an eta the client sleeps this share of the time the job has run so far, between a
# second and MAX_BLIND_SLEEP_SECONDS.
BLIND_SLEEP_SHARE = 0.25
MAX_BLIND_SLEEP_SECONDS = 5.0


def sleep_before_reading(job: dict, followed_for: float) -> float:
    """How long to sleep before the next read of a job still running: until the middle of the
    second its eta names (etas are rounded to whole seconds), or, with no eta, a share of how long
    it has run."""
    eta = job.get("eta_seconds")
    if eta:
        return max(0.0, eta - ETA_GRANULARITY_SECONDS / 2)
    return min(max(1.0, followed_for * BLIND_SLEEP_SHARE), MAX_BLIND_SLEEP_SECONDS)


def follow(
    api: Any,
    job: dict,
    *,
    timeout: float,
    on_change: Callable[[dict], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict:
    """Read the job until it ends or `timeout` passes; `on_change` sees every new status,
    progress or eta. `api` needs `get(job_id, wait=seconds)`."""
    started = clock()
    deadline = started + timeout
    last = None
    while True:
        shown = (job["status"], job.get("progress"), job.get("eta_seconds"))
        if on_change and shown != last:
            on_change(job)
            last = shown
        left = deadline - clock()
        if job["status"] in TERMINAL or left <= 0:
            return job
        sleep(min(sleep_before_reading(job, clock() - started), left))
        left = deadline - clock()
        if left <= 0:
            return job
        job = api.get(job["id"], wait=max(1, min(HOLD_SECONDS, int(left))))
