"""Jobs that outlived their workflow. The state machine's own paths always end a job, but an
execution that hits its hard timeout (no Catch sees that) or is stopped by hand does not; such a
job is failed here, and its failed event sent, by the sweeper on a schedule or by the next read.
The sweeper also sends the completion event of an ended job whose event did not go out (see
zimage.events)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aws_lambda_powertools import Logger

from zimage.clock import iso
from zimage.jobs.events import announce
from zimage.jobs.model import Job
from zimage.jobs.store import JobStore
from zimage.workflow.timing import DEADLINE_MESSAGE

logger = Logger(child=True)


def stale_cutoff(stale_after_seconds: int, now: datetime | None = None) -> str:
    """Jobs whose deadline is before this have outlived any execution that could still end them
    (`stale_after_seconds` from WorkflowTiming: the last turn, the event and a grace)."""
    return iso((now or datetime.now(UTC)) - timedelta(seconds=stale_after_seconds))


def settle_if_stale(job: Job, *, jobs: JobStore, events_client: Any, bus_name: str, stale_after_seconds: int) -> Job:
    """The job as it should be read: failed (and announced, once) if it outlived its workflow."""
    if job.is_terminal or job.deadline_at >= stale_cutoff(stale_after_seconds):
        return job
    settled, changed = jobs.end_as_failed(job.job_id, code="timeout", message=DEADLINE_MESSAGE)
    if changed and settled is not None:  # whoever ends it announces it; a concurrent settle does not
        logger.warning("job outlived its workflow; failed it", extra={"job_id": job.job_id})
        announce(settled, jobs=jobs, events_client=events_client, bus_name=bus_name)
    return settled or job


def sweep(*, jobs: JobStore, events_client: Any, bus_name: str, stale_after_seconds: int) -> tuple[int, int]:
    """Settle every overdue job, and send the events that did not go out; returns how many jobs
    were failed here and how many late events were sent."""
    settled = announced_late = 0
    for job_id in jobs.overdue(stale_cutoff(stale_after_seconds)):
        job = jobs.get(job_id)
        if job is None:
            continue
        if job.is_terminal:
            logger.warning("ended job not announced yet; sending its event", extra={"job_id": job_id})
            announced_late += announce(job, jobs=jobs, events_client=events_client, bus_name=bus_name)
        else:
            settled += settle_if_stale(
                job, jobs=jobs, events_client=events_client, bus_name=bus_name, stale_after_seconds=stale_after_seconds
            ).is_terminal
    return settled, announced_late
