"""What the workflow's steps answer: the state the Choice routes on, carried from turn to turn.

The poll and failure steps answer in this shape, so the state machine sees one.
"""

from __future__ import annotations

from typing import Any

from zimage.jobs.model import FAILED, SUCCEEDED, Job, present_fields

PENDING = "pending"
CARRIED = ("job_id", "task_id", "size", "deadline", "execution_deadline", "submitted_at")


def carried(state: dict) -> dict:
    """The part of the state every turn hands on unchanged."""
    return {key: state[key] for key in CARRIED if key in state}


def completion(job: Job) -> dict:
    """What the workflow announces an ended job with: the event's detail."""
    return {"event": job.to_event_detail()}


def answer_for(state: dict, job: Job | None) -> dict:
    """The step's answer for a job that has ended, here or (canceled, or finished by an earlier
    attempt of this step) elsewhere: always what the table says, so the two never disagree."""
    if job is None:  # removed (TTL) or never recorded: end the workflow, never loop on it
        # No "event": there is no job to describe, and the workflow announces only jobs that exist.
        error = {"code": "job_missing", "message": "the job no longer exists"}
        return {**carried(state), "status": FAILED, "error": error}
    answer: dict[str, Any] = {**carried(state), "status": job.status, **completion(job)}
    if job.status == FAILED and job.error:
        answer["error"] = {"code": job.error.code, "message": job.error.message}
    if job.status == SUCCEEDED and job.image:
        answer["image"] = present_fields(job.image)
    return answer
