"""Delivers webhooks: one SQS message per finished job that asked for one (zimage.delivery)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.delivery import deliver_completion
from zimage.runtime import shared_runtime
from zimage.tracing import tracer

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
QUEUE_URL = os.environ.get("WEBHOOK_QUEUE_URL", "")


def deliver_record(record: SQSRecord) -> None:
    def delay_retry(seconds: int) -> None:
        runtime.sqs.change_message_visibility(
            QueueUrl=QUEUE_URL, ReceiptHandle=record.receipt_handle, VisibilityTimeout=seconds
        )

    outcome = deliver_completion(
        record.json_body,
        attempt=int(record.attributes.approximate_receive_count),
        runtime=runtime,
        delay_retry=delay_retry,
    )
    metrics.add_metric(name=f"Webhooks{outcome.title().replace(' ', '')}", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    # A failed record returns to the queue after its back-off; the others are deleted.
    return process_partial_response(event=event, record_handler=deliver_record, processor=processor, context=context)
