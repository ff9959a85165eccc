"""The workflow's poll step: one turn of asking the upstream about a task, storing its image once it
ended with one (see zimage.workflow.poll)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.jobs.durations import Durations
from zimage.runtime import shared_runtime
from zimage.tracing import tracer
from zimage.workflow.poll import run_step

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()
# How long tasks take, learned across this warm function's calls: no AWS call, no storage.
durations = Durations(runtime.settings.task_seconds_prior)


@logger.inject_lambda_context(correlation_id_path="job_id", clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return run_step(event, context, runtime=runtime, durations=durations, metrics=metrics)
