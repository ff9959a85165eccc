"""/v1/images: start, read, list and cancel image jobs."""

import time
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from answers import json_response
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
from pydantic import BeforeValidator

from zimage import errors
from zimage.api import request as api_inputs
from zimage.api.request import CreateImageRequest
from zimage.api.schemas import ErrorBody, GatewayMessage, JobPage, JobStatus, JobView
from zimage.api.submit import SubmitDependencies, submission_idempotency, submit_job
from zimage.clock import epoch_seconds
from zimage.jobs.durations import Durations, job_seconds
from zimage.jobs.events import announce
from zimage.jobs.model import JOB_ID, SUCCEEDED, Job
from zimage.jobs.store import wait_for_end
from zimage.jobs.view import job_view
from zimage.runtime import shared_runtime
from zimage.workflow import sweeper
from zimage.workflow.timing import stale_after_deadline_seconds

ANSWER_MARGIN_SECONDS = 3.5
# The document's tag for these routes; app.py describes it. Each route names its operationId,
# which generated clients take as the method's name (create_image, get_image, ...).
TAG = "images"

logger = Logger(child=True)
metrics = Metrics()
router = APIGatewayRouter()
runtime = shared_runtime()
# How long jobs take, learned from the succeeded jobs this warm function reads (no extra call):
# a job still queued is shown the estimate as its eta, so that clients know when to look again.
durations = Durations(runtime.settings.task_seconds_prior)

# Idempotency-Key: Powertools keeps the first answer per (API key id, Idempotency-Key) and the
# hash of the request body. A repeat with the same body gets the same job without reaching the
# upstream; another body, or a repeat while the first is in flight, is refused (409).
idempotency = submission_idempotency(runtime.settings.idempotency_hours)

# --- What the OpenAPI document says each route answers ----------------------------------------
# Headers are declared with the answers that carry them; `required` only where every such answer
# has the header, so schemathesis' header check holds the API to it.


def _retry_after(description: str) -> dict[str, Any]:
    return {"Retry-After": {"description": description, "schema": {"type": "integer", "minimum": 1}}}


PREFERENCE_APPLIED = {
    "description": "The wait applied (`wait=N`, 1..25), when `Prefer: wait=N` was honoured; absent otherwise.",
    "schema": {"type": "string", "pattern": "^wait=([1-9]|1[0-9]|2[0-5])$"},
}
LOCATION = {
    "description": "The job's URL: `/v1/images/{id}`.",
    "required": True,
    "schema": {"type": "string", "pattern": "^/v1/images/img_[0-9A-HJKMNP-TV-Z]{26}$"},
}


def _error(description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}, **extra}


USAGE_PLAN = "The usage plan refused the call: `rate_limited` (rate or burst) or `quota_exceeded` (the monthly quota)"
RATE_LIMIT_RETRY_AFTER = _retry_after("Seconds to wait before retrying (an hour on `quota_exceeded`).")

# The stage's rate limit (template MethodSettings) covers every route, the open document's too.
STAGE_THROTTLED: dict[int | str, dict[str, Any]] = {
    429: _error(
        "API Gateway's stage rate limit refused the call: `rate_limited`",
        headers=_retry_after("Seconds to wait before retrying."),
    )
}

# What any route that needs a key can answer. 403 and 429 come from API Gateway before the function runs.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _error("Invalid request; `field` names what to fix"),
    403: {
        "description": "No or unknown API key (API Gateway's own answer)",
        "content": {"application/json": {"model": GatewayMessage}},
    },
    429: _error(USAGE_PLAN, headers=RATE_LIMIT_RETRY_AFTER),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error("No such job for this API key")}
SUBMIT_ERRORS: dict[int | str, dict[str, Any]] = {
    429: _error(
        f"{USAGE_PLAN}; `quota_exceeded` from a daily job cap, this key's or the deployment's "
        "(MaxJobsPerKeyPerDay, MaxJobsPerDay), until the next UTC midnight; or `upstream_rate_limited`: "
        "the image model is at its rate limit",
        headers=_retry_after(
            "Seconds to wait before retrying: an hour on the monthly quota's `quota_exceeded`, "
            "the seconds until the next UTC midnight on a daily cap's."
        ),
    ),
    409: _error(
        "Idempotency-Key reused with another body, or still in flight",
        headers=_retry_after("Seconds to wait before retrying, when the first request is still in flight."),
    ),
    413: _error("Body over 64 KiB"),
    415: _error("Content-Type is not application/json"),
    502: _error("The image model refused the task (`upstream_error`)"),
    503: _error(
        "Nothing was created: the model or the workflow is unavailable (`upstream_unavailable`, "
        "`workflow_unavailable`), or the deployment is misconfigured (`inconsistent_settings`, "
        "`upstream_key_unavailable`, `upstream_key_refused`, `upstream_balance_empty`)"
    ),
    504: _error("The image model did not answer in time"),
}


def _job_response(
    status: int, description: str, headers: dict[str, Any] | None = None
) -> dict[int | str, dict[str, Any]]:
    answer: dict[str, Any] = {"description": description, "content": {"application/json": {"model": JobView}}}
    if headers:
        answer["headers"] = headers
    return {status: answer}


def _query_value(parse: Callable[[str], Any]) -> BeforeValidator:
    """A query parameter checked by its parser in api_inputs, so a bad value gets the parser's
    message (and `field`) through the one error model. A repeated parameter arrives as a list."""

    def check(value: Any) -> Any:
        try:
            return parse(value if isinstance(value, str) else ",".join(map(str, value)))
        except errors.InvalidRequest as exc:
            raise ValueError(exc.message) from None

    return BeforeValidator(check)


@router.post(
    "/v1/images",
    operation_id="createImage",
    tags=[TAG],
    summary="Start an image job",
    responses={
        **_job_response(
            202,
            "Accepted: the job, status queued (or still running after `Prefer: wait=N`)",
            {"Location": LOCATION, "Preference-Applied": PREFERENCE_APPLIED},
        ),
        **_job_response(
            200,
            "With `Prefer: wait=N`, the job ended in time",
            {"Location": LOCATION, "Preference-Applied": {**PREFERENCE_APPLIED, "required": True}},
        ),
        **COMMON_ERRORS,
        **SUBMIT_ERRORS,
    },
)
def create_image(
    request: Annotated[CreateImageRequest, Body(embed=False)],
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key", description="1..255 printable characters; the same key and body give the same job."
        ),
    ] = None,
    prefer: Annotated[
        str | None, Header(alias="Prefer", description="`wait=N` (1..25): hold the answer until the job ends.")
    ] = None,
) -> Response[dict]:
    owner = caller_key_id()
    key = api_inputs.idempotency_key(idempotency_key)
    submission = {"owner": owner, "idempotency_key": key, "request": request.model_dump()}
    job_id = (idempotent_start_job() if key else start_job)(submission=submission)["job_id"]
    correlate(job_id)
    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    job = find_job(job_id)
    headers = {"Location": f"/v1/images/{job_id}"}
    return _respond_after_wait(job, prefer, headers, accepted=202)


def start_job(submission: dict) -> dict:
    """Runs once per job: an idempotent replay returns the stored answer without coming here, so
    it neither counts against the daily caps nor reaches the upstream."""
    deps = SubmitDependencies.from_runtime(runtime)  # refuses contradicting settings before any upstream call
    job = submit_job(CreateImageRequest.model_validate(submission["request"]), owner=submission["owner"], deps=deps)
    return {"job_id": job.job_id}


@cache
def idempotent_start_job() -> Callable[..., dict]:
    """start_job behind Powertools Idempotency, made on first use: its persistence layer builds
    a DynamoDB client, which only a POST with an Idempotency-Key needs."""
    store = DynamoDBPersistenceLayer(table_name=runtime.settings.idempotency_table or "unset")
    return idempotent_function(data_keyword_argument="submission", persistence_store=store, config=idempotency)(
        start_job
    )


@router.get(
    "/v1/images/<job_id>",
    operation_id="getImage",
    tags=[TAG],
    summary="Read a job",
    responses={
        **_job_response(
            200,
            "The job; a finished image has a fresh presigned URL",
            {"Preference-Applied": PREFERENCE_APPLIED},
        ),
        **COMMON_ERRORS,
        **NOT_FOUND,
    },
)
def get_image(
    job_id: Annotated[str, Path(description="The job's id, `img_...`.")],
    prefer: Annotated[
        str | None, Header(alias="Prefer", description="`wait=N` (1..25): hold the answer until the job ends.")
    ] = None,
) -> Response[dict]:
    job = find_job(job_id)
    correlate(job.job_id)
    return _respond_after_wait(job, prefer, {}, accepted=200)


@router.delete(
    "/v1/images/<job_id>",
    operation_id="cancelImage",
    tags=[TAG],
    summary="Cancel a job",
    responses={
        **_job_response(200, "The job: canceled, or as it was if it had ended"),
        **COMMON_ERRORS,
        **NOT_FOUND,
    },
)
def cancel_image(job_id: Annotated[str, Path(description="The job's id, `img_...`.")]) -> Response[dict]:
    job = find_job(job_id)
    correlate(job.job_id)
    if not job.is_terminal:
        canceled, changed = runtime.jobs.cancel(job.job_id)
        if changed and canceled is not None:
            # This call won the conditional write, so it alone announces the end.
            # Express executions cannot be stopped: the next poll finds the job canceled and ends it.
            if canceled.execution_arn:
                _stop_execution(canceled.execution_arn)
            announce(
                canceled, jobs=runtime.jobs, events_client=runtime.events, bus_name=runtime.settings.event_bus_name
            )
            metrics.add_metric(name="JobsCanceled", unit=MetricUnit.Count, value=1)
        job = canceled or job
    return json_response(200, view(job))


@router.get(
    "/v1/images",
    operation_id="listImages",
    tags=[TAG],
    summary="List the caller's jobs, newest first",
    responses={
        200: {
            "description": "One page. A filtered page can hold fewer items than `limit`, even none, and still "
            "have a `next_cursor`: follow it until it is absent.",
            "content": {"application/json": {"model": JobPage}},
        },
        **COMMON_ERRORS,
    },
)
def list_images(
    # Typed JobStatus, not JobStatus | None: absent means every status, and the document then refers
    # to the plain enum instead of allowing a null no query string can carry.
    status: Annotated[
        JobStatus, _query_value(api_inputs.status_filter), Query(description="Only jobs in this status.")
    ] = None,
    limit: Annotated[
        int,
        _query_value(api_inputs.page_limit),
        Query(
            description=f"Items per page, 1..{api_inputs.MAX_PAGE}, default {api_inputs.DEFAULT_PAGE}.",
            json_schema_extra={"minimum": 1, "maximum": api_inputs.MAX_PAGE},
        ),
    ] = api_inputs.DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> Response[dict]:
    owner = caller_key_id()
    jobs, next_key = runtime.jobs.list_for_owner(
        owner, status=status, limit=limit, start_key=api_inputs.decode_cursor(cursor, owner)
    )
    page: dict[str, Any] = {"items": [view(settle_if_stale(job)) for job in jobs]}
    if next_key:
        page["next_cursor"] = api_inputs.encode_cursor(next_key)
    return json_response(200, page)


# --- helpers -----------------------------------------------------------------------------------


def correlate(job_id: str) -> None:
    """From here on the request's log lines carry its job's id, as the workflow's do."""
    logger.set_correlation_id(job_id)
    logger.append_keys(job_id=job_id)


def caller_key_id() -> str:
    """Jobs belong to the API key that made them (API Gateway puts its id in the context)."""
    identity = router.current_event.request_context.identity
    return identity.api_key_id or identity.api_key or "anonymous"


def find_job(job_id: str) -> Job:
    # An id that cannot exist is not looked up; another caller's job reads exactly like none.
    job = runtime.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if job is None or job.owner != caller_key_id():
        raise errors.JobNotFound(f"no image job {job_id[:64]!r} for this API key")
    return settle_if_stale(job)


def settle_if_stale(job: Job) -> Job:
    return sweeper.settle_if_stale(
        job,
        jobs=runtime.jobs,
        events_client=runtime.events,
        bus_name=runtime.settings.event_bus_name,
        stale_after_seconds=stale_after_deadline_seconds(runtime.settings.poll_turn_seconds),
    )


def view(job: Job) -> dict:
    return job_view(job, runtime.images, runtime.settings.presigned_url_seconds)


def _respond_after_wait(job: Job, prefer: str | None, headers: dict, *, accepted: int) -> Response[dict]:
    wait = api_inputs.preferred_wait(prefer)
    if wait is not None:
        # Never hold past API Gateway's 29 s: what is left of this call, less a margin to answer.
        left = router.lambda_context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
        wait = min(wait, int(left)) if left >= 1 else None
    if wait is None:
        return json_response(accepted, _estimated(job), headers)
    headers = {**headers, "Preference-Applied": f"wait={wait}"}
    job = wait_for_end(lambda: runtime.jobs.get(job.job_id), wait) or job
    return json_response(200 if job.is_terminal else accepted, _estimated(job), headers)


def _estimated(job: Job) -> dict:
    """The job's view, with the history's eta where the workflow has not written one yet; a
    succeeded job teaches the history how long jobs take."""
    answer = view(job)
    if job.status == SUCCEEDED and job.completed_at:
        durations.add_once(job.job_id, job_seconds(job.created_at, job.completed_at))
    elif not job.is_terminal and answer.get("eta_seconds") is None:
        eta = durations.eta_seconds(max(0.0, time.time() - epoch_seconds(job.created_at)))
        if eta is not None:
            answer["eta_seconds"] = eta
    return answer


def _stop_execution(execution_arn: str) -> None:
    try:
        runtime.sfn.stop_execution(executionArn=execution_arn, error="Canceled", cause="canceled through the API")
    except Exception:
        # The job is canceled either way: a poll that comes later finds it so and ends the run.
        logger.exception("could not stop the execution", extra={"execution_arn": execution_arn})
