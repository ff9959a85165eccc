"""On a schedule: fail the jobs whose workflow ended without ending them (zimage.workflow.sweeper)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.runtime import shared_runtime
from zimage.tracing import tracer
from zimage.workflow.sweeper import sweep
from zimage.workflow.timing import stale_after_deadline_seconds

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    settled, announced_late = sweep(
        jobs=runtime.jobs,
        events_client=runtime.events,
        bus_name=runtime.settings.event_bus_name,
        stale_after_seconds=stale_after_deadline_seconds(runtime.settings.poll_turn_seconds),
    )
    metrics.add_metric(name="JobsSettledBySweep", unit=MetricUnit.Count, value=settled)
    metrics.add_metric(name="CompletionEventsSentLate", unit=MetricUnit.Count, value=announced_late)
    return {"settled": settled, "announced_late": announced_late}
