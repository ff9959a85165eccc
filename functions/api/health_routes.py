"""/v1/health: can this deployment start jobs? Checked without paying for one."""

from typing import Any

from answers import json_response
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from image_routes import COMMON_ERRORS, runtime

from zimage.api.schemas import ErrorBody, HealthView
from zimage.api.submit import caller_error
from zimage.upstream.errors import UpstreamError

TAG = "health"
# Well inside API Gateway's 29 s, with the retries of a slow upstream.
CHECK_SECONDS = 10.0

router = APIGatewayRouter()


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"model": ErrorBody}}}


@router.get(
    "/v1/health",
    operation_id="checkHealth",
    tags=[TAG],
    summary="Check the deployment",
    description="Checks that the settings agree and that Novita accepts the service's key, without "
    "starting a paid task. `zimage doctor` calls it. A Novita account without balance shows only "
    "when a job is submitted (`upstream_balance_empty`).",
    responses={
        200: {"description": "Every check passed", "content": {"application/json": {"model": HealthView}}},
        **{status: answer for status, answer in COMMON_ERRORS.items() if status != 400},
        429: {**COMMON_ERRORS[429], "description": COMMON_ERRORS[429]["description"] + "; or `upstream_rate_limited`"},
        502: _error("The image model refused the check (`upstream_error`)"),
        503: _error(
            "The deployment cannot start jobs: `inconsistent_settings`, `upstream_key_unavailable`, "
            "`upstream_key_refused`, or `upstream_unavailable`; the message says what to fix"
        ),
        504: _error("The image model did not answer in time (`upstream_timeout`)"),
    },
)
def check_health() -> Response[dict]:
    runtime.settings.workflow_timing()  # raises InconsistentSettings
    try:
        runtime.novita.check_key(within=CHECK_SECONDS)
    except UpstreamError as exc:
        raise caller_error(exc) from exc
    return json_response(200, {"status": "ok", "checks": {"settings": "consistent", "upstream_key": "accepted"}})
