"""Delivers webhooks: one SQS message per finished job that asked for one (zimage.webhooks.delivery)."""

from __future__ import annotations

import json
import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.runtime import shared_runtime
from zimage.tracing import tracer
from zimage.webhooks.delivery import DeliveryDependencies, DeliveryFailed, deliver_completion

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()
QUEUE_URL = os.environ.get("WEBHOOK_QUEUE_URL", "")


def deliver_record(record: dict) -> None:
    """One SQS record: its body is the completion event, its receive count the attempt."""

    def delay_retry(seconds: int) -> None:
        runtime.sqs.change_message_visibility(
            QueueUrl=QUEUE_URL, ReceiptHandle=record["receiptHandle"], VisibilityTimeout=seconds
        )

    event = json.loads(record["body"])
    logger.set_correlation_id(event["detail"]["id"])  # the job's id, as in the workflow's lines
    outcome = deliver_completion(
        event,
        attempt=int(record["attributes"]["ApproximateReceiveCount"]),
        deps=DeliveryDependencies.from_runtime(runtime),
        delay_retry=delay_retry,
    )
    metrics.add_metric(name=f"Webhooks{outcome.title().replace(' ', '')}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # A failed record returns to the queue after its back-off; the others are deleted. The queue
    # hands over one message per call (BatchSize: 1), so this loop is the whole partial-batch
    # answer: Powertools' batch utility would add a tenth of boto3's import time to every cold
    # start, because it imports all of Powertools' event classes (docs/performance.md).
    failures = []
    for record in event["Records"]:
        try:
            deliver_record(record)
        except DeliveryFailed:  # the receiver's failure, logged where it was seen
            failures.append({"itemIdentifier": record["messageId"]})
        except Exception:  # ours (a throttled table, say): retried all the same, then dead-lettered
            logger.exception("delivery attempt failed", extra={"message_id": record["messageId"]})
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}
