"""The HTTP API: POST /v1/images starts a job, GET /v1/images/{id} shows it."""

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage import errors
from zimage.models import JOB_ID, CreateImageRequest, Job
from zimage.runtime import Runtime
from zimage.submit import submit_job
from zimage.validation import describe_validation_error

MAX_BODY_BYTES = 64 * 1024
# A job still active this long after its deadline lost its workflow (it cannot happen through
# the state machine's own paths, but an execution can be stopped by hand): it reads as failed.
STALE_AFTER_DEADLINE_SECONDS = 180

logger = Logger()
tracer = Tracer()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
runtime = Runtime()


@app.post("/v1/images")
@tracer.capture_method
def create_image(request: Annotated[CreateImageRequest, Body(embed=False)]) -> Response[dict]:
    settings = runtime.settings
    job = submit_job(
        request,
        owner=caller_key_id(),
        novita=runtime.novita,
        jobs=runtime.jobs,
        sfn=runtime.sfn,
        state_machine_arn=settings.state_machine_arn,
        poll_deadline_seconds=settings.poll_deadline_seconds,
        retention_days=settings.job_retention_days,
        base64_output=settings.base64_output,
    )
    logger.append_keys(job_id=job.job_id)
    metrics.add_metric(name="JobsSubmitted", unit=MetricUnit.Count, value=1)
    return _json(202, view(job), headers={"Location": f"/v1/images/{job.job_id}"})


@app.get("/v1/images/<job_id>")
@tracer.capture_method
def get_image(job_id: Annotated[str, Path(description="The job's id, `img_...`.")]) -> Response[dict]:
    job = find_job(job_id)
    logger.append_keys(job_id=job.job_id)
    return _json(200, view(job))


def find_job(job_id: str) -> Job:
    # An id that cannot exist is not looked up; another caller's job reads exactly like none.
    job = runtime.jobs.get(job_id) if JOB_ID.match(job_id) else None
    if job is None or job.owner != caller_key_id():
        raise errors.JobNotFound(f"no image job {job_id[:64]!r} for this API key")
    return settle_if_stale(job)


def settle_if_stale(job: Job) -> Job:
    if job.is_terminal:
        return job
    deadline = datetime.fromisoformat(job.deadline_at.replace("Z", "+00:00"))
    if (datetime.now(UTC) - deadline).total_seconds() < STALE_AFTER_DEADLINE_SECONDS:
        return job
    logger.warning("job outlived its workflow; marking it failed")
    settled = runtime.jobs.record_failure(
        job.job_id, code="timeout", message="the image was not ready before the job's deadline"
    )
    return settled or job


def view(job: Job) -> dict:
    """The job as clients see it; a finished image gets a presigned URL made now."""
    if job.image is None:
        return job.to_view()
    url, expires_at = runtime.images.presign(job.image.key, runtime.settings.presigned_url_seconds)
    return job.to_view(image_url=url, url_expires_at=expires_at)


def caller_key_id() -> str:
    """Jobs belong to the API key that made them (API Gateway puts its id in the context)."""
    identity = app.current_event.request_context.identity
    return identity.api_key_id or identity.api_key or "anonymous"


# --- One error model for every answer the service makes -------------------------------------


@app.exception_handler(errors.ServiceError)
def _service_error(exc: errors.ServiceError) -> Response[dict]:
    if exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code, "reason": exc.message})
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return _json(exc.status, exc.body(), headers=exc.headers)


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict]:
    message, field = describe_validation_error(exc.errors())
    return _service_error(errors.InvalidRequest(message, field=field))


@app.not_found
def _no_route(_: NotFoundError) -> Response[dict]:
    return _service_error(errors.JobNotFound("no such resource; see GET /v1/images/{id} and POST /v1/images"))


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[dict]:
    logger.exception("unexpected error")
    return _json(500, errors.ServiceError("the service failed; retry later").body())


def _json(status: int, body: dict, headers: dict | None = None) -> Response[dict]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=headers)


def refuse_unreadable_body(event: dict) -> dict | None:
    """API Gateway hands any body to the function; size, type and encoding are checked here,
    before the resolver parses it, so each gets its own status code."""
    body = event.get("body")
    if event.get("httpMethod") != "POST" or body is None:
        return None
    if event.get("isBase64Encoded"):
        try:
            event["body"] = body = base64.b64decode(body).decode("utf-8")
            event["isBase64Encoded"] = False
        except (binascii.Error, UnicodeDecodeError):
            return _raw(errors.InvalidRequest("the body must be UTF-8 encoded JSON"))
    if len(body.encode("utf-8", "surrogatepass")) > MAX_BODY_BYTES:
        return _raw(errors.PayloadTooLarge(f"the body must be at most {MAX_BODY_BYTES} bytes"))
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    media_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return _raw(
            errors.UnsupportedMediaType(
                f"Content-Type must be application/json, got {media_type or 'none'}", field="Content-Type"
            )
        )
    return None


def _raw(exc: errors.ServiceError) -> dict:
    return {
        "statusCode": exc.status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(exc.body()),
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return refuse_unreadable_body(event) or app.resolve(event, context)
