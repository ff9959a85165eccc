"""Jobs that outlived their workflow. The state machine's own paths always end a job, but an
execution that hits its hard timeout (no Catch sees that) or is stopped by hand does not; such a
job is failed here, and its failed event sent, by the sweeper on a schedule or by the next read.
The sweeper also sends the completion event of an ended job whose event did not go out (see
zimage.events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from zimage.events import announce
from zimage.jobs import JobStore
from zimage.models import Job, iso

logger = Logger(child=True)

# How long past its deadline an active job is left alone: the workflow ends jobs at the deadline
# itself, and a poll turn that started just before it may still be storing the image.
STALE_AFTER_DEADLINE_SECONDS = 180
MESSAGE = "the image was not ready before the job's deadline"


def stale_cutoff(now: datetime | None = None) -> str:
    return iso((now or datetime.now(UTC)) - timedelta(seconds=STALE_AFTER_DEADLINE_SECONDS))


def settle_if_stale(job: Job, *, jobs: JobStore, events_client: Any, bus_name: str) -> Job:
    """The job as it should be read: failed (and announced, once) if it outlived its workflow."""
    if job.is_terminal or job.deadline_at >= stale_cutoff():
        return job
    settled, changed = jobs.end_as_failed(job.job_id, code="timeout", message=MESSAGE)
    if changed and settled is not None:  # whoever ends it announces it; a concurrent settle does not
        logger.warning("job outlived its workflow; failed it", extra={"job_id": job.job_id})
        announce(settled, jobs=jobs, events_client=events_client, bus_name=bus_name)
    return settled or job


def sweep(*, jobs: JobStore, events_client: Any, bus_name: str) -> tuple[int, int]:
    """Settle every overdue job, and send the events that did not go out; returns how many jobs
    were failed here and how many late events were sent."""
    settled = announced_late = 0
    for job_id in jobs.overdue(stale_cutoff()):
        job = jobs.get(job_id)
        if job is None:
            continue
        if job.is_terminal:
            logger.warning("ended job not announced yet; sending its event", extra={"job_id": job_id})
            announced_late += announce(job, jobs=jobs, events_client=events_client, bus_name=bus_name)
        else:
            settled += settle_if_stale(job, jobs=jobs, events_client=events_client, bus_name=bus_name).is_terminal
    return settled, announced_late
