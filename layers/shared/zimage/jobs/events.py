"""Completion events on EventBridge. The workflow sends succeeded and failed itself (the ASL's
PutEvents tasks use these same names); the API sends canceled, since a canceled job's execution
is stopped before it could, and the sweeper the failed event of a job its workflow left behind.
A job a Lambda ended stays in the active index until its event is out (JobStore.mark_announced),
so the sweeper sends one that failed to go."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from zimage.jobs.model import CANCELED, FAILED, SUCCEEDED, Job

logger = Logger(child=True)

SOURCE = "zimage"
DETAIL_TYPES = {
    SUCCEEDED: "Image Generation Succeeded",
    FAILED: "Image Generation Failed",
    CANCELED: "Image Generation Canceled",
}


def completion_entry(job: Job, bus_name: str) -> dict:
    return {
        "Source": SOURCE,
        "DetailType": DETAIL_TYPES[job.status],
        "Detail": json.dumps(job.to_event_detail()),
        "EventBusName": bus_name,
        "Resources": [],
    }


def announce(job: Job, *, jobs: Any, events_client: Any, bus_name: str) -> bool:
    """Send the completion event of a job a Lambda ended, and note that it went out."""
    sent = send_completion(events_client, bus_name, job)
    if sent:
        try:
            jobs.mark_announced(job.job_id)
        except Exception:  # the event is out; at worst a later sweep sends it once more
            logger.exception("event sent, but the job is still listed as unannounced", extra={"job_id": job.job_id})
    return sent


def send_completion(events_client: Any, bus_name: str, job: Job) -> bool:
    """Send the job's completion event; False (and an error log) if EventBridge refused it."""
    try:
        answer = events_client.put_events(Entries=[completion_entry(job, bus_name)])
    except Exception:
        logger.exception("completion event not sent", extra={"job_id": job.job_id})
        return False
    if answer.get("FailedEntryCount"):
        logger.error("completion event refused", extra={"job_id": job.job_id, "entries": answer.get("Entries")})
        return False
    return True
