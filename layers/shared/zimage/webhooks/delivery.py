"""Delivering a finished job's webhook, signed as Standard Webhooks says.

One webhook delivery attempt for a finished job, driven by its completion event.

The event arrives through SQS; a failed attempt hides the message for an exponentially growing
delay and lets it return, so retries need no timer of their own. After the last attempt the
queue's redrive policy moves the message to the dead-letter queue."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import urllib3
from aws_lambda_powertools import Logger

from zimage.clock import iso, utc_now
from zimage.jobs.view import job_view
from zimage.tracing import tracer
from zimage.webhooks.addresses import (
    HostDoesNotResolve,
    RefusedWebhookUrl,
    Resolver,
    WebhookTarget,
    checked_addresses,
    parse_target,
    resolve_host,
)

MAX_ANSWER_BYTES = 64 * 1024


class DeliveryFailed(Exception):
    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True):
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable


def message_id(job_id: str) -> str:
    """One message per job (it ends once), so retries of it keep the same webhook-id."""
    return f"msg_{job_id}"


@tracer.capture_method(capture_response=False)
def deliver(
    url: str,
    *,
    msg_id: str,
    payload: dict,
    signer: object,
    allow_loopback: bool,
    timeout_seconds: float,
    resolve: Resolver = resolve_host,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """POST one signed delivery; returns the receiver's 2xx status or raises DeliveryFailed."""
    try:
        target = parse_target(url, allow_loopback=allow_loopback)
        addresses = checked_addresses(target, allow_loopback=allow_loopback, resolve=resolve)
    except HostDoesNotResolve as exc:  # DNS may come back: a retry will tell
        raise DeliveryFailed(str(exc)) from None
    except RefusedWebhookUrl as exc:
        raise DeliveryFailed(str(exc), retryable=False) from None
    body = json.dumps(payload, separators=(",", ":"))
    timestamp = now()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "zimage-webhooks/1",
        "Host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signer.sign(msg_id, timestamp, body),
    }
    answer = None
    for address in addresses:  # each one checked above; the next is tried if one cannot connect
        pool = _pool_for(target, address, timeout_seconds)
        try:
            answer = pool.urlopen(
                "POST",
                target.path,
                body=body.encode(),
                headers=headers,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            break
        except urllib3.exceptions.NewConnectionError:
            continue
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryFailed(f"the receiver did not answer: {type(exc).__name__}") from None
        finally:
            pool.close()
    if answer is None:
        raise DeliveryFailed("the receiver could not be reached at any of its addresses")
    try:
        answer.read(MAX_ANSWER_BYTES)  # a receiver's answer is not read further than this
    except urllib3.exceptions.HTTPError:
        pass
    finally:
        answer.release_conn()
    if 200 <= answer.status < 300:
        return answer.status
    # 410 Gone: the receiver asks us to stop; anything else may heal.
    raise DeliveryFailed(
        f"the receiver answered HTTP {answer.status}", status=answer.status, retryable=answer.status != 410
    )


def _pool_for(target: WebhookTarget, address: str, timeout_seconds: float) -> urllib3.HTTPConnectionPool:
    """A pool that connects to the checked address, while TLS still verifies the host name."""
    timeout = urllib3.Timeout(connect=min(3.0, timeout_seconds), read=timeout_seconds)
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            address,
            target.port,
            timeout=timeout,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            maxsize=1,
        )
    return urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, maxsize=1)


MAX_RETRY_DELAY_SECONDS = 900  # SQS allows up to 12 h of invisibility; 15 min keeps receivers current


def retry_delay_seconds(attempt: int, base_seconds: int) -> int:
    """Exponential back-off after the given failed attempt (1, 2, ...): base, 2*base, 4*base..."""
    return min(MAX_RETRY_DELAY_SECONDS, base_seconds * 2 ** max(0, attempt - 1))


if TYPE_CHECKING:
    from zimage.images.store import ImageStore
    from zimage.jobs.store import JobStore

logger = Logger(child=True)


DELIVERED, PENDING, FAILED = "delivered", "pending", "failed"


class DeliveryDependencies(NamedTuple):
    """What delivering a completion needs, made from the function's runtime (as the poll step's)."""

    jobs: JobStore
    images: ImageStore
    signer: Callable[[], object]  # a Standard Webhooks signer with the deployment's secret
    presigned_url_seconds: int
    allow_loopback: bool
    timeout_seconds: float
    max_attempts: int
    retry_base_seconds: int
    deliver_to: Callable[..., int] = deliver

    @classmethod
    def from_runtime(cls, runtime: Any) -> DeliveryDependencies:
        settings = runtime.settings
        return cls(
            jobs=runtime.jobs,
            images=runtime.images,
            signer=runtime.webhook_signer,
            presigned_url_seconds=settings.presigned_url_seconds,
            allow_loopback=settings.allow_loopback_webhooks,
            timeout_seconds=settings.webhook_timeout_seconds,
            max_attempts=settings.webhook_max_attempts,
            retry_base_seconds=settings.webhook_retry_base_seconds,
        )


def deliver_completion(
    event: dict, *, attempt: int, deps: DeliveryDependencies, delay_retry: Callable[[int], None]
) -> str:
    """Deliver the job named by a completion event; returns what happened, or raises
    DeliveryFailed when the attempt should be retried."""
    job_id = event["detail"]["id"]
    job = deps.jobs.get(job_id)
    if job is None or job.webhook is None:
        logger.warning("no webhook to deliver", extra={"job_id": job_id})
        return "skipped"
    if job.webhook.state == DELIVERED:  # EventBridge and SQS deliver at least once
        return "already delivered"
    payload = {
        "type": f"image.{job.status}",
        "timestamp": iso(utc_now()),
        "data": job_view(job, deps.images, deps.presigned_url_seconds),
    }
    now = iso(utc_now())
    try:
        status = deps.deliver_to(
            job.webhook.url,
            msg_id=message_id(job_id),
            payload=payload,
            signer=deps.signer(),
            allow_loopback=deps.allow_loopback,
            timeout_seconds=deps.timeout_seconds,
        )
    except DeliveryFailed as exc:
        last = not exc.retryable or attempt >= deps.max_attempts
        deps.jobs.record_webhook(
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
        delay_retry(0 if last else retry_delay_seconds(attempt, deps.retry_base_seconds))
        raise
    deps.jobs.record_webhook(
        job_id,
        state=DELIVERED,
        attempts=attempt,
        last_status=status,
        last_error=None,
        last_attempt_at=now,
        delivered_at=now,
    )
    return "delivered"
