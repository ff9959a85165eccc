"""The workflow's failure path: whatever the poll step could not survive ends the job as failed,
so no job is ever left queued or processing."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.runtime import shared_runtime
from zimage.tracing import tracer
from zimage.workflow.answers import answer_for
from zimage.workflow.record_failure import failure_from_catch

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    caught = event.get("error") or {}
    code, message = failure_from_catch(caught)
    logger.warning("workflow caught an error", extra={"error": caught.get("Error"), "code": code})
    job = runtime.jobs.record_failure(event["job_id"], code=code, message=message)
    metrics.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=1)
    # As the table now has it: failed, or ended another way meanwhile (canceled, succeeded).
    return answer_for(event, job)
