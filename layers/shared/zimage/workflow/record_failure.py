"""The workflow's failure path: turn what Step Functions caught into the job's error."""

from __future__ import annotations

import json

# Error names the workflow can catch, and what the job's caller is told. Anything else is a
# fault of ours: the caller gets a generic message, the details stay in our logs.
KNOWN_FAILURES = {
    "States.Timeout": ("timeout", "the image was not ready before the job's deadline"),
    "PollLimitReached": ("timeout", "the image was not ready within the allowed number of polls"),
    "ImageUnavailable": ("image_unavailable", "the image model's image could not be downloaded"),
    "UpstreamUnavailable": ("upstream_unavailable", "the image model could not be reached"),
    "UpstreamTimeout": ("upstream_unavailable", "the image model did not answer in time"),
    "Sandbox.Timedout": ("timeout", "a step of the job ran out of time; the image model was too slow"),
}
INTERNAL = ("internal_error", "the service failed while finishing this job; it has been logged")


def failure_from_catch(caught: dict | None) -> tuple[str, str]:
    """`caught` is the Catch's `{"Error", "Cause"}`; a Lambda's Cause is its JSON error report."""
    caught = caught or {}
    name = str(caught.get("Error") or "")
    code, message = KNOWN_FAILURES.get(name, INTERNAL)
    if name in KNOWN_FAILURES and name.startswith(("Image", "Upstream")):
        detail = _error_message(caught.get("Cause"))
        if detail:
            message = f"{message}: {detail}"
    return code, message


def _error_message(cause: object) -> str:
    if not isinstance(cause, str):
        return ""
    try:
        report = json.loads(cause)
    except ValueError:
        return ""
    return str(report.get("errorMessage") or "")[:500] if isinstance(report, dict) else ""
