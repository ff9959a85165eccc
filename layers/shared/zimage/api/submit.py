"""POST /v1/images: count the job, start the upstream task, record the job, start the workflow.

Order matters. A request refused by its own checks (validation, the webhook URL) counts for
nothing; then the daily caps (zimage.jobs.quota) take one job before anything is paid for. The
upstream is called next, so a request it refuses leaves nothing behind, its unit given back too;
only a call whose outcome is unknown (a read timeout: the task may exist) keeps its unit.
If the record or the workflow cannot be made afterwards, the record is removed again and the caller
gets a 503: the orphaned upstream task is logged with its id, and nothing half-made is shown.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from aws_lambda_powertools import Logger

from zimage import errors
from zimage.clock import epoch_seconds, iso, utc_now
from zimage.jobs.model import QUEUED, Job, WebhookState, active_shard_for, new_job_id
from zimage.jobs.quota import DailyQuota, counted_owner, upstream_refused
from zimage.misconfiguration import account_fault
from zimage.upstream.errors import UpstreamError, UpstreamRateLimited, UpstreamRejected, UpstreamTimeout
from zimage.upstream.novita import NovitaClient
from zimage.webhooks.addresses import check_webhook_url
from zimage.workflow.timing import WorkflowTiming

if TYPE_CHECKING:  # the model pulls in pydantic, which only the API function needs
    from zimage.api.request import CreateImageRequest

logger = Logger(child=True)

# Seconds kept, past the upstream's answer, to record the job and start its workflow.
RECORD_RESERVE_SECONDS = 5.0
# The least time worth giving the upstream's submit: one connection and a quick answer.
SHORTEST_SUBMIT_SECONDS = 2.0


class JobWriter(Protocol):
    def create(self, job: Job) -> None: ...
    def delete(self, job_id: str) -> None: ...


def submission_idempotency(hours: int) -> Any:
    """One Idempotency mechanism for both ways in (the API's Idempotency-Key, a requested event's
    idempotency_key or id): Powertools keeps the first answer per (owner, key) with a hash of the
    request, so a repeat gets the same answer without reaching the upstream, and a repeat with
    another request is refused."""
    from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig

    return IdempotencyConfig(
        event_key_jmespath="[owner, idempotency_key]",
        payload_validation_jmespath="request",
        expires_after_seconds=hours * 3600,
    )


def execution_arn_for(state_machine_arn: str, job_id: str) -> str:
    """Executions are named after their job, so the ARN is known before the start."""
    return state_machine_arn.replace(":stateMachine:", ":execution:") + f":{job_id}"


def workflow_input(job: Job, deadline_epoch: float, execution_deadline_epoch: float) -> dict:
    """The state machine's input: only ids and numbers, never image bytes. `deadline` is the job's
    (it fails with timeout past it); `execution_deadline` is a little before the execution's own
    hard timeout, which starts counting after this. `submitted_at` is when the upstream task
    started, from which the poll step's estimates count."""
    return {
        "job_id": job.job_id,
        "task_id": job.task_id,
        "size": job.size,
        "deadline": deadline_epoch,
        "execution_deadline": execution_deadline_epoch,
        "submitted_at": epoch_seconds(job.created_at),
        "polls": 0,
        "upstream_errors": 0,
    }


class SubmitDependencies(NamedTuple):
    """What starting a job needs, made from the function's runtime (as the poll step's are)."""

    novita: NovitaClient
    jobs: JobWriter
    sfn: Any
    state_machine_arn: str
    timing: WorkflowTiming
    retention_days: int
    workflow_type: str
    base64_output: bool = False
    allow_loopback_webhooks: bool = False
    quota: DailyQuota | None = None  # None: nothing counted
    # When the calling invocation's own timeout strikes (epoch seconds); None: no bound. A submit
    # cut short by the timeout might have made a task that a redelivery would pay for again.
    function_ends_at: float | None = None

    @classmethod
    def from_runtime(cls, runtime: Any) -> SubmitDependencies:
        """Raises InconsistentSettings when the deployment's settings contradict each other, so
        nothing is started, nor paid for, on them."""
        settings = runtime.settings
        return cls(
            novita=runtime.novita,
            jobs=runtime.jobs,
            sfn=runtime.sfn,
            state_machine_arn=settings.state_machine_arn,
            timing=settings.workflow_timing(),
            retention_days=settings.job_retention_days,
            workflow_type=settings.workflow_type,
            base64_output=settings.base64_output,
            allow_loopback_webhooks=settings.allow_loopback_webhooks,
            quota=runtime.quota(),
        )


def submit_job(
    request: CreateImageRequest, *, owner: str, deps: SubmitDependencies, origin: dict[str, str] | None = None
) -> Job:
    """Start one job for `owner`. `origin` names the event a job made from an event answers
    (source, event_id, idempotency_key); its completion events carry it as `request`."""
    if request.webhook_url:  # refused here, before anything is paid for
        check_webhook_url(request.webhook_url, allow_loopback=deps.allow_loopback_webhooks)
    within = None
    if deps.function_ends_at is not None:
        # The upstream call must end in time to record the job and start its workflow after it.
        within = deps.function_ends_at - time.time() - RECORD_RESERVE_SECONDS
        if within < SHORTEST_SUBMIT_SECONDS:
            raise errors.WorkflowUnavailable("too little time was left to start the job; nothing was made, retry")
    quota = deps.quota
    taken = quota.take(counted_owner(owner)) if quota else None  # 429 quota_exceeded past a daily cap
    job_id = new_job_id()
    try:
        task_id = deps.novita.start_task(
            prompt=request.prompt, size=request.size, seed=request.seed, base64_output=deps.base64_output, within=within
        )
    except UpstreamError as exc:
        if quota and taken and upstream_refused(exc):
            quota.give_back(taken)  # surely no task upstream, so nothing was spent
        raise caller_error(exc) from exc

    now = utc_now()
    deadline = now + timedelta(seconds=deps.timing.poll_deadline_seconds)
    execution_deadline = now + timedelta(seconds=deps.timing.execution_timeout_seconds)
    job = Job(
        job_id=job_id,
        owner=owner,
        status=QUEUED,
        prompt=request.prompt,
        size=request.size,
        seed=request.seed,
        task_id=task_id,
        # Only a Standard execution's ARN is known before its start (an Express one ends in an id AWS
        # picks), and only a Standard one can be stopped, which is what the ARN is kept for.
        execution_arn=execution_arn_for(deps.state_machine_arn, job_id) if deps.workflow_type == "STANDARD" else None,
        created_at=iso(now),
        updated_at=iso(now),
        deadline_at=iso(deadline),
        expires_at=int(time.time()) + deps.retention_days * 86400,
        webhook=WebhookState(url=request.webhook_url) if request.webhook_url else None,
        active_shard=active_shard_for(job_id),
        metadata=request.metadata,
        request=origin,
    )
    try:
        deps.jobs.create(job)
        deps.sfn.start_execution(
            stateMachineArn=deps.state_machine_arn,
            name=job_id,  # one execution per job, even if this call is repeated
            input=json.dumps(workflow_input(job, deadline.timestamp(), execution_deadline.timestamp())),
        )
    except Exception:
        logger.exception(
            "job could not be started; record removed", extra={"job_id": job_id, "orphaned_task_id": task_id}
        )
        _forget(deps.jobs, job_id)
        raise errors.JobNotRecorded("the service could not start the job; nothing was created, please retry") from None
    logger.info("job started", extra={"job_id": job_id, "task_id": task_id})
    return job


def _forget(jobs: JobWriter, job_id: str) -> None:
    try:
        jobs.delete(job_id)
    except Exception:
        logger.exception("job record could not be removed")


def caller_error(exc: UpstreamError) -> errors.ServiceError:
    """How an upstream failure reads to our caller (a submit, or the health check)."""
    fault = account_fault(exc)
    if fault:
        return fault
    if isinstance(exc, UpstreamRateLimited):
        retry_after = str(max(1, round(exc.retry_after))) if exc.retry_after else "5"
        return errors.ModelRateLimited(
            "the image model is at its rate limit; retry after the Retry-After seconds",
            headers={"Retry-After": retry_after},
        )
    if isinstance(exc, UpstreamTimeout):
        return errors.ModelTimedOut("the image model did not answer in time; retry later")
    if isinstance(exc, UpstreamRejected):
        if exc.reason == "ILLEGAL_PROMPT":
            return errors.InvalidRequest("the image model refused this prompt", field="prompt")
        if exc.reason == "INVALID_IMAGE_SIZE":
            return errors.InvalidRequest("the image model refused this size", field="size")
        return errors.ModelRefused(f"the image model refused the task ({exc.reason or exc.status})")
    return errors.ModelUnavailable("the image model is unavailable; retry later")
