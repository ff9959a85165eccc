"""Starts jobs from `Image Generation Requested` events, queued by the requests rule
(zimage.api.event_requests): the same submit code as POST /v1/images, one outcome per request."""

from __future__ import annotations

import time
from collections.abc import Callable

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function
from aws_lambda_powertools.utilities.typing import LambdaContext

from zimage.api.event_requests import (
    PoisonMessage,
    QueuedRequest,
    RequestDependencies,
    RetryLater,
    answer_request,
    retry_delay,
)
from zimage.api.submit import SubmitDependencies, submission_idempotency
from zimage.runtime import shared_runtime
from zimage.tracing import tracer

logger = Logger()
metrics = Metrics()
runtime = shared_runtime()
settings = runtime.settings
idempotency = submission_idempotency(settings.idempotency_hours)
persistence = DynamoDBPersistenceLayer(table_name=settings.idempotency_table or "unset")


def once(decide: Callable[..., dict]) -> Callable[..., dict]:
    """The decision behind Powertools Idempotency, as the API's start_job is."""
    return idempotent_function(data_keyword_argument="submission", persistence_store=persistence, config=idempotency)(
        decide
    )


def answer_record(record: SQSRecord, lambda_context: LambdaContext) -> None:
    """One queued request. A request left for later is hidden for its back-off and reported as a
    batch item failure (the raise), so the queue hands it over again then. Each submit ends before
    this call's timeout: one cut short there could have made a task a redelivery would pay again."""
    message = QueuedRequest.from_record(record.raw_event)
    ends_at = time.time() + lambda_context.get_remaining_time_in_millis() / 1000
    deps = RequestDependencies(
        submit=lambda: SubmitDependencies.from_runtime(runtime)._replace(function_ends_at=ends_at),
        events=runtime.events,
        bus_name=settings.event_bus_name,
        max_age_seconds=settings.request_max_age_minutes * 60,
        retry_base_seconds=settings.request_retry_base_seconds,
    )
    try:
        outcome = answer_request(message, deps, once=once)
    except RetryLater as later:
        _hide(record, later.delay_seconds)
        metrics.add_metric(name="RequestsRetried", unit=MetricUnit.Count, value=1)
        raise
    except PoisonMessage:
        # Never answerable: it comes back with a growing delay until the redrive policy moves it
        # to the dead-letter queue, whose alarm calls for a look.
        logger.exception("not a requested event", extra={"message_id": message.message_id})
        _hide(record, retry_delay(message.receive_count, base_seconds=settings.request_retry_base_seconds))
        raise
    metrics.add_metric(
        name="JobsSubmitted" if "job_id" in outcome else "RequestsRejected", unit=MetricUnit.Count, value=1
    )


def _hide(record: SQSRecord, seconds: int) -> None:
    try:
        runtime.sqs.change_message_visibility(
            QueueUrl=settings.request_queue_url, ReceiptHandle=record.receipt_handle, VisibilityTimeout=seconds
        )
    except Exception:  # the queue's own visibility timeout brings it back instead
        logger.exception("could not delay the request's next try")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    idempotency.register_lambda_context(context)
    # A processor per batch: it keeps the batch's successes and failures while it runs. A batch
    # whose every request is left for later (a burst the upstream refuses) is an answer, not a
    # function error: each message already carries its own delay.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=answer_record, processor=processor, context=context)
