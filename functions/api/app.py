"""The HTTP API function: the resolver, the one error model, the OpenAPI document.
The routes themselves are in image_routes.py."""

import base64
import binascii
import json

import health_routes
import image_routes
import page_route
from answers import json_response
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage import errors
from zimage.api.request import describe_validation_error
from zimage.misconfiguration import report_misconfigured
from zimage.tracing import tracer

MAX_BODY_BYTES = 64 * 1024
DOCUMENT_TAG = "meta"
DOCUMENT_OPERATION = "getOpenApiDocument"

logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver(enable_validation=True)
NO_SUCH_RESOURCE = "no such resource; see GET /v1/openapi.json"
app.include_router(image_routes.router)
app.include_router(health_routes.router)
app.include_router(page_route.router)


def openapi_document() -> dict:
    """The OpenAPI 3 document, generated from the routes and their models."""
    # Imported here: building the OpenAPI models is a large part of a cold start
    # (docs/performance.md), and only this route needs them.
    from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server, Tag

    document = json.loads(
        app.get_openapi_json_schema(
            title="zimage",
            version="1.0.0",
            summary="Text-to-image jobs on Novita's Z-Image-Turbo",
            description="Start a job with POST /v1/images, follow it with GET, download the image "
            "through its presigned URL. Every call needs the x-api-key header, except GET /v1/openapi.json.",
            servers=[Server(url="/", description="this deployment")],
            tags=[
                Tag(
                    name=image_routes.TAG,
                    description="Image jobs: start one, follow it until it ends, list them, cancel one. "
                    "Each job belongs to the API key that started it.",
                ),
                Tag(
                    name=health_routes.TAG,
                    description="Whether this deployment can start jobs, checked without paying for one.",
                ),
                Tag(
                    name=DOCUMENT_TAG, description="The API's description: this OpenAPI document, served without a key."
                ),
            ],
            security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
            security=[{"apiKey": []}],
        )
    )
    # Powertools documents a 422 for every validated route; this API answers those failures
    # with 400 and its own error model (see _invalid_request), so the 422s are not true here.
    for operations in document["paths"].values():
        for operation in operations.values():
            operation["responses"].pop("422", None)
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document["components"]["schemas"].pop(unused, None)
    # The document needs no key (template: ApiKeyRequired false). Powertools leaves out a route's
    # empty security, which would leave the document-wide apiKey requirement on it.
    document["paths"]["/v1/openapi.json"]["get"]["security"] = []
    return document


@app.get(
    "/v1/openapi.json",
    operation_id=DOCUMENT_OPERATION,
    tags=[DOCUMENT_TAG],
    summary="This OpenAPI document",
    description="The OpenAPI 3.1 document of this API, generated from its routes and models. No key needed.",
    responses={
        200: {
            "description": "The OpenAPI 3.1 document",
            "content": {"application/json": {"schema": {"type": "object", "required": ["openapi", "info", "paths"]}}},
        },
        **image_routes.STAGE_THROTTLED,
    },
)
def get_openapi() -> Response[dict]:
    return json_response(200, openapi_document())


# --- One error model for every answer the service makes -------------------------------------


@app.exception_handler(errors.ServiceError)
def _service_error(exc: errors.ServiceError) -> Response[dict]:
    if isinstance(exc, errors.Misconfigured):
        report_misconfigured(exc)
    elif exc.status >= 500:
        logger.warning("request failed", extra={"code": exc.code, "reason": exc.message})
    metrics.add_metric(name="RequestsRejected", unit=MetricUnit.Count, value=1)
    return json_response(exc.status, exc.body(), headers=exc.headers)


@app.exception_handler(RequestValidationError)
def _invalid_request(exc: RequestValidationError) -> Response[dict]:
    message, field = describe_validation_error(exc.errors())
    return _service_error(errors.InvalidRequest(message, field=field))


@app.exception_handler(IdempotencyValidationError)
def _idempotency_key_reused(_: IdempotencyValidationError) -> Response[dict]:
    return _service_error(
        errors.Conflict(
            "this Idempotency-Key was used with another body; use a new key for a new request",
            field="Idempotency-Key",
        )
    )


@app.exception_handler(IdempotencyAlreadyInProgressError)
def _idempotency_in_flight(_: IdempotencyAlreadyInProgressError) -> Response[dict]:
    return _service_error(
        errors.Conflict(
            "a request with this Idempotency-Key is still being processed; retry in a few seconds",
            field="Idempotency-Key",
            headers={"Retry-After": "2"},
        )
    )


@app.exception_handler(IdempotencyPersistenceLayerError)
def _idempotency_store_down(_: IdempotencyPersistenceLayerError) -> Response[dict]:
    logger.exception("idempotency store failed")
    return _service_error(errors.WorkflowUnavailable("the service could not check the Idempotency-Key; retry later"))


@app.not_found
def _no_route(_: NotFoundError) -> Response[dict]:
    return _service_error(errors.JobNotFound(NO_SUCH_RESOURCE))


@app.exception_handler(Exception)
def _unexpected(exc: Exception) -> Response[dict]:
    logger.exception("unexpected error")
    return json_response(500, errors.ServiceError("the service failed; retry later").body())


def refuse_odd_path(event: dict) -> dict | None:
    """The resolver's route patterns end in `$`, which also matches before a final newline, so
    `/v1/images%0A` would list the images: a path holding a control character names no resource."""
    path = event.get("path") or ""
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in path):
        return _raw(errors.JobNotFound(NO_SUCH_RESOURCE))
    return None


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
    # Powertools validates the first element of a top-level JSON array as if it were the body,
    # so anything but an object is refused here. Malformed JSON is left to the resolver's 400.
    try:
        parsed = json.loads(body) if body.strip() else {}
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return _raw(errors.InvalidRequest('the body must be a JSON object such as {"prompt": "a red fox"}'))
    return None


def _raw(exc: errors.ServiceError) -> dict:
    # Compact, like the resolver's own answers, so every error reads the same.
    body = json.dumps(exc.body(), separators=(",", ":"))
    return {"statusCode": exc.status, "headers": {"Content-Type": "application/json"}, "body": body}


# clear_state: keys a request added (its job id) never carry over to the next one.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    image_routes.idempotency.register_lambda_context(context)
    return refuse_odd_path(event) or refuse_unreadable_body(event) or app.resolve(event, context)
