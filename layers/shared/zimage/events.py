"""Completion events on EventBridge. The workflow sends succeeded and failed itself (the ASL's
PutEvents tasks use these same names); the API sends canceled, since a canceled job's execution
is stopped before it could."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools import Logger

from zimage.models import CANCELED, FAILED, SUCCEEDED, Job

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


def publish_completion(events_client: Any, bus_name: str, job: Job) -> bool:
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
