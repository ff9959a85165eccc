"""Submit by event on its own: a queued `Image Generation Requested` event starts one job through
the API's submit code, or is rejected with one event, or is left for later with a growing delay.
moto in-process for the tables and EventBridge; the upstream and Step Functions record their calls."""

from __future__ import annotations

import json

import boto3
import pytest

from local.template import Resolver, load_template
from zimage.api.event_requests import (
    MAX_AGE_MINUTES_ALLOWED,
    MAX_RECEIVE_COUNT,
    MAX_RETRY_DELAY_SECONDS,
    MIN_RETRY_BASE_SECONDS,
    REJECTED,
    PoisonMessage,
    QueuedRequest,
    RequestDependencies,
    RetryLater,
    answer_request,
    receives_within,
    retry_delay,
)
from zimage.api.submit import SubmitDependencies, submission_idempotency
from zimage.upstream.errors import UpstreamRateLimited
from zimage.workflow.timing import WorkflowTiming

from .test_submit import STATE_MACHINE, RecordingNovita, RecordingStepFunctions

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
NOW = 1_800_000_000.0


class RecordingEvents:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.entries: list[dict] = []

    def put_events(self, Entries: list[dict]) -> dict:
        if self.fail:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        self.entries += Entries
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "e"}]}

    def details(self) -> list[dict]:
        return [json.loads(entry["Detail"]) for entry in self.entries]


def message(detail: object, *, event_id: str = "ev-1", source: str = "acme.orders", age: float = 1, receives: int = 1):
    event = {"id": event_id, "source": source, "detail-type": "Image Generation Requested", "detail": detail}
    return QueuedRequest(message_id=f"m-{event_id}", body=json.dumps(event), sent_at=NOW - age, receive_count=receives)


@pytest.fixture
def world(jobs):
    novita, sfn, events = RecordingNovita(), RecordingStepFunctions(), RecordingEvents()
    deps = RequestDependencies(
        submit=lambda: SubmitDependencies(
            novita=novita,
            jobs=jobs,
            sfn=sfn,
            state_machine_arn=STATE_MACHINE,
            timing=WorkflowTiming(execution_timeout_seconds=290, poll_turn_seconds=60),
            retention_days=30,
            workflow_type="STANDARD",
        ),
        events=events,
        bus_name="zimage-bus",
        max_age_seconds=30 * 60,
        retry_base_seconds=5,
        clock=lambda: NOW,
        rng=lambda: 0.0,
    )
    return deps, novita, events, jobs


def test_a_valid_request_starts_one_job_owned_by_its_source_that_names_the_request(world):
    deps, novita, events, jobs = world
    detail = {"prompt": "a red fox", "size": "512*512", "metadata": {"order": "A-1"}, "idempotency_key": "order-1"}

    outcome = answer_request(message(detail), deps)

    job = jobs.get(outcome["job_id"])
    assert job.owner == "events:acme.orders"
    assert job.metadata == {"order": "A-1"}
    assert job.to_event_detail()["request"] == {
        "source": "acme.orders",
        "event_id": "ev-1",
        "idempotency_key": "order-1",
    }
    assert len(novita.started) == 1
    assert events.entries == []  # its outcome is the job's own completion event


@pytest.mark.parametrize(
    ("detail", "field"),
    [
        ({"size": "512*512"}, "prompt"),
        ({"prompt": "a fox", "size": "9*9"}, "size"),
        ({"prompt": "a fox", "metadata": {"bad key": "v"}}, "metadata"),
        ({"prompt": "a fox", "colour": "red"}, "colour"),
        ({"prompt": "a fox", "idempotency_key": 7}, "idempotency_key"),
        ({"prompt": "a fox", "idempotency_key": "é" * 3}, "idempotency_key"),
        ("a fox", None),
    ],
)
def test_an_invalid_request_is_rejected_once_with_no_job_and_no_upstream_call(world, detail, field):
    deps, novita, events, _ = world

    outcome = answer_request(message(detail), deps)

    assert outcome == {"rejected": "invalid_request"}
    assert novita.started == []
    [entry] = events.entries
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == ("zimage", REJECTED, "zimage-bus")
    [sent] = events.details()
    assert sent["error"]["code"] == "invalid_request"
    assert sent["error"].get("field") == field
    assert sent["request"] == {"source": "acme.orders", "event_id": "ev-1"} | (
        {"idempotency_key": detail["idempotency_key"]}
        if isinstance(detail, dict) and isinstance(detail.get("idempotency_key"), str)
        else {}
    )


def test_a_rejection_carries_the_metadata_and_idempotency_key_it_was_given(world):
    deps, _, events, _ = world
    detail = {"prompt": "", "metadata": {"order": "A-9"}, "idempotency_key": "order-9"}

    answer_request(message(detail), deps)

    [sent] = events.details()
    assert (sent["metadata"], sent["idempotency_key"]) == ({"order": "A-9"}, "order-9")


def test_a_request_older_than_its_age_limit_is_rejected_as_expired_without_an_upstream_call(world):
    deps, novita, events, _ = world

    outcome = answer_request(message({"prompt": "a fox"}, age=30 * 60 + 1), deps)

    assert outcome == {"rejected": "request_expired"}
    assert novita.started == []
    assert events.details()[0]["error"]["code"] == "request_expired"


def test_a_rate_limited_request_is_left_for_later_with_a_growing_delay_and_nothing_made(world, jobs):
    deps, novita, events, _ = world
    novita.error = UpstreamRateLimited("too many requests", reason="RATE_LIMIT_EXCEEDED")

    delays = []
    for receives in (1, 2, 3):
        with pytest.raises(RetryLater) as later:
            answer_request(message({"prompt": "a fox"}, receives=receives), deps)
        delays.append(later.value.delay_seconds)

    assert delays == [5, 10, 20]
    novita.error = UpstreamRateLimited("too many requests", retry_after=60)
    with pytest.raises(RetryLater) as later:
        answer_request(message({"prompt": "a fox"}), deps)
    assert later.value.delay_seconds == 60  # the upstream's own Retry-After, when it gives one
    assert events.entries == []
    assert jobs.list_for_owner("events:acme.orders")[0] == []


def test_a_rejected_event_that_cannot_be_sent_leaves_the_request_for_later(world):
    deps, _, _, _ = world
    deps = deps._replace(events=RecordingEvents(fail=True))

    with pytest.raises(RetryLater):
        answer_request(message({"prompt": ""}), deps)


@pytest.mark.parametrize("body", ["not json", json.dumps(["a list"]), json.dumps({"detail": {"prompt": "x"}})])
def test_a_message_that_is_no_event_is_poison(world, body):
    deps, novita, events, _ = world

    with pytest.raises(PoisonMessage):
        answer_request(QueuedRequest("m-1", body, NOW, 1), deps)
    assert novita.started == [] and events.entries == []


# --- once per request: Powertools Idempotency, as the API uses it ---------------------------------


@pytest.fixture
def once(aws):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, idempotent_function

    table = Resolver(TEMPLATE, {}).resolve(RESOURCES["IdempotencyTable"]["Properties"])
    boto3.client("dynamodb").create_table(
        TableName="unit-idempotency",
        BillingMode=table["BillingMode"],
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
    )
    store = DynamoDBPersistenceLayer(table_name="unit-idempotency")
    config = submission_idempotency(24)

    def wrap(decide):
        return idempotent_function(data_keyword_argument="submission", persistence_store=store, config=config)(decide)

    return wrap


def test_a_redelivered_request_gets_its_first_job_back_and_the_upstream_is_called_once(world, once):
    deps, novita, events, _ = world

    first = answer_request(message({"prompt": "a fox"}), deps, once=once)
    again = answer_request(message({"prompt": "a fox"}, receives=2), deps, once=once)
    # A redelivery past the age limit still gets its job, never a rejection as well.
    late = answer_request(message({"prompt": "a fox"}, age=31 * 60, receives=3), deps, once=once)

    assert first == again == late
    assert len(novita.started) == 1
    assert events.entries == []


def test_the_same_idempotency_key_in_two_events_makes_one_job_and_another_request_under_it_is_a_conflict(world, once):
    deps, novita, events, _ = world
    detail = {"prompt": "a fox", "idempotency_key": "order-7"}

    first = answer_request(message(detail, event_id="ev-1"), deps, once=once)
    second = answer_request(message(detail, event_id="ev-2"), deps, once=once)
    other = answer_request(message({**detail, "prompt": "a cat"}, event_id="ev-3"), deps, once=once)
    elsewhere = answer_request(message(detail, event_id="ev-4", source="acme.billing"), deps, once=once)

    assert first == second
    assert other == {"rejected": "conflict"}
    assert events.details()[0]["request"]["event_id"] == "ev-3"
    assert elsewhere != first  # keys are scoped to the owner
    assert len(novita.started) == 2


def test_a_request_without_a_key_is_once_per_event_id(world, once):
    deps, novita, _, _ = world

    answer_request(message({"prompt": "a fox"}, event_id="ev-1"), deps, once=once)
    answer_request(message({"prompt": "a fox"}, event_id="ev-2"), deps, once=once)

    assert len(novita.started) == 2  # two events, two ids: two requests


def test_a_rejection_is_not_kept_so_the_same_key_may_try_again(world, once):
    deps, _, events, _ = world
    detail = {"prompt": "a fox", "idempotency_key": "order-8"}

    answer_request(message(detail, age=31 * 60), deps, once=once)
    outcome = answer_request(message(detail, event_id="ev-2"), deps, once=once)

    assert "job_id" in outcome
    assert [d["error"]["code"] for d in events.details()] == ["request_expired"]


# --- the retry schedule, the queue and what AWS allows ---------------------------------------------


def test_the_delay_doubles_honours_retry_after_and_is_capped():
    assert [retry_delay(n, base_seconds=5, rng=lambda: 0.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert retry_delay(1, base_seconds=5, retry_after=30, rng=lambda: 0.0) == 30
    assert retry_delay(30, base_seconds=5, rng=lambda: 0.0) == MAX_RETRY_DELAY_SECONDS
    assert retry_delay(1, base_seconds=4, rng=lambda: 1.0) == 6  # at most half again, at random
    assert retry_delay(8, base_seconds=5, seconds_left=12, rng=lambda: 0.0) == 13  # just past the age limit


def test_the_queue_leaves_room_for_every_retry_the_longest_age_allows():
    parameters = TEMPLATE["Parameters"]
    redrive = RESOURCES["RequestQueue"]["Properties"]["RedrivePolicy"]

    assert parameters["RequestMaxAgeMinutes"]["MaxValue"] == MAX_AGE_MINUTES_ALLOWED
    assert parameters["RequestRetryBaseSeconds"]["MinValue"] == MIN_RETRY_BASE_SECONDS
    assert redrive["maxReceiveCount"] == MAX_RECEIVE_COUNT
    worst = receives_within(MAX_AGE_MINUTES_ALLOWED * 60, base_seconds=MIN_RETRY_BASE_SECONDS)
    assert worst < MAX_RECEIVE_COUNT


def test_no_request_outlives_its_idempotency_record():
    parameters = TEMPLATE["Parameters"]

    assert parameters["RequestMaxAgeMinutes"]["MaxValue"] <= parameters["IdempotencyHours"]["MinValue"] * 60


def test_sqs_facts_the_worker_relies_on():
    # SQS gives SentTimestamp in epoch milliseconds (API_Message: "returned as an integer
    # representing the epoch time in milliseconds"); the queue's own clock, not the producer's.
    record = {"messageId": "m", "body": "{}", "attributes": {"SentTimestamp": "1800000000123"}}
    assert QueuedRequest.from_record(record).sent_at == pytest.approx(1_800_000_000.123)
    # ChangeMessageVisibility takes 0..43200 s (12 hours); every delay stays well inside.
    assert MAX_RETRY_DELAY_SECONDS <= 43200
    queue = RESOURCES["RequestQueue"]["Properties"]
    worker = RESOURCES["SubmitWorkerFunction"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * worker["Timeout"]  # Lambda's advice for SQS sources


def test_lambda_facts_the_event_source_relies_on():
    mapping = RESOURCES["SubmitWorkerRequests"]["Properties"]
    concurrency = TEMPLATE["Parameters"]["SubmitWorkerMaxConcurrency"]

    # ScalingConfig.MaximumConcurrency accepts 2..1000 (CloudFormation's ScalingConfig reference).
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "SubmitWorkerMaxConcurrency"}}
    assert (concurrency["MinValue"], concurrency["MaxValue"]) == (2, 1000)
    assert 2 <= concurrency["Default"] <= 1000
    # Lambda reads batchItemFailures only when the mapping asks for it (ReportBatchItemFailures).
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_the_requests_rule_takes_producers_events_and_never_our_own():
    # EventBridge's anything-but (eb-create-pattern-operators) on an event bus: any source but
    # zimage, so our own Rejected or completion events never loop back as requests. moto's
    # matcher stands in for EventBridge's; the local stack routes through the same rule.
    from moto.events.models import EventPattern

    pattern = EventPattern.load(json.dumps(RESOURCES["RequestRule"]["Properties"]["EventPattern"]))

    def matches(source: str, detail_type: str) -> bool:
        return pattern.matches_event({"source": source, "detail-type": detail_type, "detail": {}})

    assert RESOURCES["RequestRule"]["Properties"]["EventPattern"]["source"] == [{"anything-but": "zimage"}]
    assert matches("acme.orders", "Image Generation Requested")
    assert not matches("zimage", "Image Generation Requested")
    assert not matches("acme.orders", "Image Generation Succeeded")


def test_a_job_that_could_not_be_recorded_after_its_task_was_made_is_rejected_not_paid_twice(world):
    deps, novita, _, _ = world
    broken = deps.submit()._replace(sfn=RecordingStepFunctions(error=RuntimeError("Step Functions is down")))
    deps = deps._replace(submit=lambda: broken)

    outcome = answer_request(message({"prompt": "a fox"}), deps)

    assert outcome == {"rejected": "workflow_unavailable"}
    assert len(novita.started) == 1  # tried once; a retry would make a second task


def test_a_submit_the_upstream_did_not_answer_in_time_is_rejected_since_a_task_may_exist(world):
    from zimage.upstream.errors import UpstreamTimeout

    deps, novita, events, _ = world
    novita.error = UpstreamTimeout("read timed out")

    outcome = answer_request(message({"prompt": "a fox"}), deps)

    assert outcome == {"rejected": "upstream_timeout"}
    assert events.details()[0]["error"]["code"] == "upstream_timeout"


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("refused", True),  # no connection was ever opened: surely no task
        ("503", True),  # a refusal, as the daily caps count it: its unit is given back
        ("200 without a task id", False),  # may have made a task: the unit is kept, and so is the answer
    ],
)
def test_an_unavailable_upstream_is_tried_again_only_when_it_surely_made_no_task(world, error, retried):
    from zimage.upstream.errors import UpstreamUnavailable

    deps, novita, events, _ = world
    novita.error = {
        "refused": UpstreamUnavailable("could not be reached"),
        "503": UpstreamUnavailable("HTTP 503", status=503),
        "200 without a task id": UpstreamUnavailable("no task_id", status=200),
    }[error]

    if retried:
        with pytest.raises(RetryLater):
            answer_request(message({"prompt": "a fox"}), deps)
        assert events.entries == []
    else:
        assert answer_request(message({"prompt": "a fox"}), deps) == {"rejected": "upstream_unavailable"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        ("key unreadable", "upstream_key_unavailable"),
        ("key refused", "upstream_key_refused"),
        ("balance empty", "upstream_balance_empty"),
    ],
)
def test_a_deployment_its_operator_must_fix_keeps_the_request_and_says_so(world, caplog, error, code):
    from zimage.upstream.errors import UpstreamKeyUnavailable, UpstreamRejected

    deps, novita, events, jobs = world
    novita.error = {
        "key unreadable": UpstreamKeyUnavailable("SSM parameter /k: AccessDeniedException"),
        "key refused": UpstreamRejected("HTTP 403", status=403, reason="INVALID_API_KEY"),
        "balance empty": UpstreamRejected("HTTP 400", status=400, reason="BILLING_BALANCE_NOT_ENOUGH"),
    }[error]

    # The request is not refused for good: it waits for the operator's fix, within its age limit.
    with pytest.raises(RetryLater) as later:
        answer_request(message({"prompt": "a fox"}, receives=2), deps)

    assert later.value.delay_seconds == 10
    assert events.entries == [] and jobs.list_for_owner("events:acme.orders")[0] == []
    # and the operator hears of it the way every function says it (zimage.misconfiguration)
    reported = [r for r in caplog.records if r.getMessage() == "deployment misconfigured"]
    assert [r.__dict__.get("code") for r in reported] == [code]

    # Once fixed, the same request starts its job.
    novita.error = None
    assert "job_id" in answer_request(message({"prompt": "a fox"}, receives=3), deps)


def test_a_request_met_with_too_little_time_left_in_the_call_is_left_for_the_next_one(world):
    """A submit cut short by the worker's timeout might make a task that the redelivery pays for
    again: a request the call has no time left for is not started at all."""
    import time

    deps, novita, events, _ = world
    submit = deps.submit
    deps = deps._replace(submit=lambda: submit()._replace(function_ends_at=time.time() + 3))

    with pytest.raises(RetryLater):
        answer_request(message({"prompt": "a fox"}), deps)

    assert novita.started == [] and events.entries == []
