"""One webhook delivery attempt for a finished job, driven by its completion event.

The event arrives through SQS; a failed attempt hides the message for an exponentially growing
delay and lets it return, so retries need no timer of their own. After the last attempt the
queue's redrive policy moves the message to the dead-letter queue.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger

from zimage.models import iso, utc_now
from zimage.views import job_view
from zimage.webhooks import DeliveryFailed, deliver, message_id, retry_delay_seconds

logger = Logger(child=True)

DELIVERED, PENDING, FAILED = "delivered", "pending", "failed"


def deliver_completion(
    event: dict,
    *,
    attempt: int,
    runtime: Any,
    delay_retry: Callable[[int], None],
    deliver_to: Callable[..., int] = deliver,
) -> str:
    """Deliver the job named by a completion event; returns what happened, or raises
    DeliveryFailed when the attempt should be retried."""
    settings = runtime.settings
    job_id = event["detail"]["id"]
    job = runtime.jobs.get(job_id)
    if job is None or job.webhook is None:
        logger.warning("no webhook to deliver", extra={"job_id": job_id})
        return "skipped"
    if job.webhook.state == DELIVERED:  # EventBridge and SQS deliver at least once
        return "already delivered"
    payload = {
        "type": f"image.{job.status}",
        "timestamp": iso(utc_now()),
        "data": job_view(job, runtime.images, settings.presigned_url_seconds),
    }
    now = iso(utc_now())
    try:
        status = deliver_to(
            job.webhook.url,
            msg_id=message_id(job_id),
            payload=payload,
            signer=runtime.webhook_signer(),
            allow_loopback=settings.allow_loopback_webhooks,
            timeout_seconds=settings.webhook_timeout_seconds,
        )
    except DeliveryFailed as exc:
        last = not exc.retryable or attempt >= settings.webhook_max_attempts
        runtime.jobs.record_webhook(
            job_id,
            state=FAILED if last else PENDING,
            attempts=attempt,
            last_status=exc.status,
            last_error=exc.message,
            last_attempt_at=now,
        )
        logger.warning("webhook delivery failed", extra={"job_id": job_id, "attempt": attempt, "error": exc.message})
        if not exc.retryable:
            return "refused"  # the URL itself is refused now: no retry, nothing for the dead-letter queue
        # The last attempt's message comes back at once, so the redrive moves it to the DLQ.
        delay_retry(0 if last else retry_delay_seconds(attempt, settings.webhook_retry_base_seconds))
        raise
    runtime.jobs.record_webhook(
        job_id,
        state=DELIVERED,
        attempts=attempt,
        last_status=status,
        last_error=None,
        last_attempt_at=now,
        delivered_at=now,
    )
    return "delivered"
