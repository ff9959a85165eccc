"""Submit by event: an `Image Generation Requested` event on the stack's bus, queued by the
requests rule, becomes a job through the same submit code as POST /v1/images (zimage.api.submit).

One queued request ends in exactly one of two ways, decided once per (owner, key) under the same
Powertools Idempotency the API uses, so our own redeliveries never start a second upstream task:

- started: a job owned by `events:<source>`, whose completion event (Succeeded, Failed or
  Canceled) is the request's outcome and names it (`request`: source, event_id, idempotency_key);
- rejected: no job; an `Image Generation Rejected` event says why. No upstream task either,
  except where its code says one may exist (upstream_timeout, upstream_unavailable,
  workflow_unavailable): those are rejected, not retried, so that none is paid for twice.

The key is the event's `idempotency_key`, else its id. Whatever cannot be decided now (the
upstream's rate limit or an outage, our own store or workflow briefly unavailable, a deployment
its operator must fix) is left in the
queue for later, each time longer (RetryLater: the handler hides the message for that long),
until `RequestMaxAgeMinutes` after the queue received it; then it is rejected as expired.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from pydantic import ValidationError

from zimage import errors
from zimage.api import request as api_inputs
from zimage.api.request import CreateImageRequest, describe_validation_error
from zimage.api.submit import SubmitDependencies, submit_job
from zimage.jobs.events import SOURCE
from zimage.jobs.quota import event_owner, upstream_refused
from zimage.misconfiguration import report_misconfigured
from zimage.upstream.errors import UpstreamError, UpstreamRateLimited

logger = Logger(child=True)

REQUESTED = "Image Generation Requested"
REJECTED = "Image Generation Rejected"
# The longest a request is hidden between two tries: a burst is spread out, yet a request
# waiting behind an outage is tried again within minutes of its end.
MAX_RETRY_DELAY_SECONDS = 300
# The requests queue's maxReceiveCount (template.yaml; a unit test holds the two together, and
# shows it exceeds the receives the longest RequestMaxAgeMinutes takes at the shortest delays).
MAX_RECEIVE_COUNT = 50
# What the template allows (RequestMaxAgeMinutes; RequestRetryBaseSeconds).
MAX_AGE_MINUTES_ALLOWED = 60
MIN_RETRY_BASE_SECONDS = 1
# The key that stands in for a missing idempotency_key: the event's own id.
EVENT_ID_KEY = "event:{}"
# A request still being decided by another invocation (a redelivery that overlaps it).
IN_FLIGHT_RETRY_SECONDS = 5
# The errors of a try that surely made nothing and may work later.
RETRYABLE = (errors.ModelRateLimited, errors.ModelUnavailable, errors.WorkflowUnavailable)


class QueuedRequest(NamedTuple):
    """One message of the requests queue: its body is the EventBridge event."""

    message_id: str
    body: str
    sent_at: float  # epoch seconds: the queue's SentTimestamp, not the producer's clock
    receive_count: int

    @classmethod
    def from_record(cls, record: dict) -> QueuedRequest:
        attributes = record.get("attributes") or {}
        return cls(
            message_id=record["messageId"],
            body=record["body"],
            sent_at=int(attributes["SentTimestamp"]) / 1000,  # SQS gives epoch milliseconds
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
        )


class RetryLater(Exception):
    """Nothing was decided: try the request again after `delay_seconds`."""

    def __init__(self, reason: str, delay_seconds: int):
        super().__init__(reason)
        self.delay_seconds = delay_seconds


class Rejection(Exception):
    """The request is refused for good. Raised out of the idempotent decision, so nothing is kept
    as decided: a producer may send the same key again once the cause is gone (a daily cap)."""

    def __init__(self, error: errors.ServiceError):
        super().__init__(error.message)
        self.error = error


class PoisonMessage(Exception):
    """A message that is not a requested event: it can never be answered, only dead-lettered."""


class RequestDependencies(NamedTuple):
    submit: Callable[[], SubmitDependencies]  # made per request, so settings read now apply
    events: Any  # a boto3 EventBridge client
    bus_name: str
    max_age_seconds: int
    retry_base_seconds: int
    clock: Callable[[], float] = time.time
    rng: Callable[[], float] = random.random


def retry_delay(
    receive_count: int,
    *,
    base_seconds: int,
    retry_after: float | None = None,
    seconds_left: float | None = None,
    rng: Callable[[], float] = random.random,
) -> int:
    """Seconds to hide a request before its next try: the base, doubled for each receive so far,
    never less than the upstream's Retry-After, at most MAX_RETRY_DELAY_SECONDS; up to half again
    at random, so a burst refused together does not come back together. Never much past the
    request's age limit, so an expired request is rejected soon after it expires."""
    delay = base_seconds * 2 ** min(max(receive_count - 1, 0), 16)
    delay = max(delay, retry_after or 0)
    delay = delay * (1 + rng() / 2)
    if seconds_left is not None:
        delay = min(delay, max(seconds_left, 0) + 1)
    return max(1, min(MAX_RETRY_DELAY_SECONDS, math.ceil(delay)))


def receives_within(max_age_seconds: float, *, base_seconds: int) -> int:
    """How many receives the retry schedule takes, at its shortest delays (no jitter, no
    Retry-After), until a request has waited `max_age_seconds` and the next one rejects it."""
    waited, receives = 0.0, 0
    while waited <= max_age_seconds:
        receives += 1
        waited += retry_delay(receives, base_seconds=base_seconds, rng=lambda: 0.0)
    return receives + 1


def origin_of(event: dict) -> dict[str, str]:
    """What the outcome event names the request by."""
    origin = {"source": str(event["source"]), "event_id": str(event["id"])}
    key = _detail(event).get("idempotency_key")
    if isinstance(key, str):
        origin["idempotency_key"] = key
    return origin


def answer_request(
    message: QueuedRequest, deps: RequestDependencies, *, once: Callable[[Callable], Callable] | None = None
) -> dict:
    """Decide one queued request: {"job_id": ...} or {"rejected": code}. `once` wraps the
    decision in Powertools Idempotency (see zimage.api.submit.submission_idempotency), so a
    redelivered request that started a job gets that job back. Raises RetryLater or PoisonMessage."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    event = _event(message.body)
    detail = _detail(event)
    key = detail.get("idempotency_key")
    submission = {
        "owner": event_owner(event["source"]),
        # A key that is no key (a number, say) is refused below; the event id keeps the refusal once.
        "idempotency_key": key if isinstance(key, str) else EVENT_ID_KEY.format(event["id"]),
        "request": event.get("detail"),
        "origin": origin_of(event),
        "sent_at": message.sent_at,
        "receive_count": message.receive_count,
    }

    def decide_request(submission: dict) -> dict:
        return _decide(submission, deps)

    decide = once(decide_request) if once else decide_request
    try:
        return decide(submission=submission)
    except Rejection as rejection:
        return _reject(submission, rejection.error, deps)
    except IdempotencyValidationError:
        # The same key with another request: the first one's decision stands, this one is refused.
        error = errors.Conflict(
            "this idempotency_key was used with another request; use a new key for a new request",
            field="idempotency_key",
        )
        return _reject(submission, error, deps)
    except IdempotencyAlreadyInProgressError:
        raise RetryLater("the same request is being decided by another invocation", IN_FLIGHT_RETRY_SECONDS) from None
    except IdempotencyPersistenceLayerError:
        logger.exception("idempotency store failed")
        raise RetryLater("the idempotency store is unavailable", _delay(submission, deps)) from None


def _decide(submission: dict, deps: RequestDependencies) -> dict:
    # Checked under the idempotency record: a request that started a job before it expired gets
    # that job back on a late redelivery, never a rejection as well.
    age = deps.clock() - submission["sent_at"]
    if age > deps.max_age_seconds:
        raise Rejection(
            errors.RequestExpired(
                f"the request was not started within RequestMaxAgeMinutes ({deps.max_age_seconds // 60}) "
                "of reaching the queue; nothing was made"
            )
        )
    try:
        request = parse_request(submission["request"])
        job = submit_job(request, owner=submission["owner"], deps=deps.submit(), origin=submission["origin"])
    except errors.JobNotRecorded as exc:
        # A task exists upstream already: trying again would pay for a second one.
        raise Rejection(exc) from None
    except errors.Misconfigured as exc:
        # The operator's to fix (the key, its permissions, the balance), and nothing was made: the
        # request waits for the fix, up to RequestMaxAgeMinutes, while the alarm calls for it.
        report_misconfigured(exc)
        raise RetryLater(exc.message, _delay(submission, deps)) from None
    except RETRYABLE as exc:
        cause = exc.__cause__
        if isinstance(cause, UpstreamError) and not upstream_refused(cause):
            # An answer that may have come with a task (a 200 without a usable task id): as the
            # daily caps keep its unit, trying again could pay for a second task.
            raise Rejection(exc) from None
        # The upstream's own Retry-After when it gave one (Novita documents none), not the hint
        # the API adds for HTTP callers: the growing delay is the back-off.
        retry_after = cause.retry_after if isinstance(cause, UpstreamRateLimited) else None
        logger.info("request left for later", extra={"reason": exc.code})
        raise RetryLater(exc.message, _delay(submission, deps, retry_after=retry_after)) from None
    except errors.ServiceError as exc:
        raise Rejection(exc) from None
    except Exception:
        logger.exception("request could not be decided; left for later")
        raise RetryLater("an unexpected error", _delay(submission, deps)) from None
    logger.info("request started a job", extra={"job_id": job.job_id})
    return {"job_id": job.job_id}


def parse_request(detail: Any) -> CreateImageRequest:
    """The event's detail as the POST body (plus an optional idempotency_key), or InvalidRequest
    naming the field, in the API's own words."""
    if not isinstance(detail, dict):
        raise errors.InvalidRequest('the detail must be a JSON object such as {"prompt": "a red fox"}')
    body = dict(detail)
    key = body.pop("idempotency_key", None)
    if key is not None and not isinstance(key, str):
        raise errors.InvalidRequest("idempotency_key must be a string", field="idempotency_key")
    if key is not None:
        try:
            api_inputs.idempotency_key(key)
        except errors.InvalidRequest:
            raise errors.InvalidRequest(
                "idempotency_key must be 1..255 printable ASCII characters", field="idempotency_key"
            ) from None
    try:
        return CreateImageRequest.model_validate(body)
    except ValidationError as exc:
        message, field = describe_validation_error(exc.errors())
        raise errors.InvalidRequest(message, field=field) from None


def rejected_entry(submission: dict, error: errors.ServiceError, bus_name: str) -> dict:
    detail = submission["request"] if isinstance(submission["request"], dict) else {}
    metadata = detail.get("metadata")
    key = detail.get("idempotency_key")
    return {
        "Source": SOURCE,
        "DetailType": REJECTED,
        "Detail": json.dumps(
            {
                "error": error.body()["error"],
                "metadata": metadata if isinstance(metadata, dict) else None,
                "idempotency_key": key if isinstance(key, str) else None,
                "request": submission["origin"],
            }
        ),
        "EventBusName": bus_name,
        "Resources": [],
    }


def _reject(submission: dict, error: errors.ServiceError, deps: RequestDependencies) -> dict:
    try:
        answer = deps.events.put_events(Entries=[rejected_entry(submission, error, deps.bus_name)])
    except Exception:
        logger.exception("rejected event not sent")
        answer = {"FailedEntryCount": 1}
    if answer.get("FailedEntryCount"):
        # Nothing is recorded as decided, so the next try rejects it again and sends the event then.
        raise RetryLater("the rejected event could not be sent", _delay(submission, deps))
    logger.info("request rejected", extra={"code": error.code, "field": error.field})
    return {"rejected": error.code}


def _delay(submission: dict, deps: RequestDependencies, *, retry_after: float | None = None) -> int:
    seconds_left = deps.max_age_seconds - (deps.clock() - submission["sent_at"])
    return retry_delay(
        submission["receive_count"],
        base_seconds=deps.retry_base_seconds,
        retry_after=retry_after,
        seconds_left=seconds_left,
        rng=deps.rng,
    )


def _event(body: str) -> dict:
    try:
        event = json.loads(body)
    except ValueError:
        raise PoisonMessage("the message is not JSON") from None
    if not isinstance(event, dict) or not all(isinstance(event.get(name), str) for name in ("id", "source")):
        raise PoisonMessage("the message is not an EventBridge event")
    return event


def _detail(event: dict) -> dict:
    detail = event.get("detail")
    return detail if isinstance(detail, dict) else {}
