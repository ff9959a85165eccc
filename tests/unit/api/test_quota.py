"""The daily caps: one conditional UpdateItem per counter before the upstream is paid, the unit
given back when the upstream surely made no task, 429 quota_exceeded until the next UTC midnight,
and idempotent replays not counted. moto in-process; the clock is a fake one."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest

from local.template import ROOT, Resolver, load_template
from zimage import errors
from zimage.jobs.model import JOB_ID
from zimage.jobs.quota import (
    DailyCaps,
    DailyQuota,
    deployment_counter_id,
    key_counter_id,
    seconds_until_midnight,
)
from zimage.upstream.errors import UpstreamRateLimited, UpstreamRejected, UpstreamTimeout, UpstreamUnavailable

from .test_submit import RecordingNovita, RecordingStepFunctions, submit

DAY = "2026-12-02"
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
# Counters expire two days after their day ends: 2026-12-05T00:00:00Z.
EXPIRES = int(datetime(2026, 12, 5, tzinfo=UTC).timestamp())


class Clock:
    def __init__(self, now: datetime = NOON):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SpyTable:
    """The moto table, with every update_item call kept; `fail_on` makes calls on one id fail."""

    def __init__(self, table: Any, fail_on: str | None = None):
        self.table = table
        self.updates: list[dict] = []
        self.fail_on = fail_on

    def update_item(self, **call: Any) -> dict:
        self.updates.append(call)
        if call["Key"]["job_id"] == self.fail_on:
            raise RuntimeError("DynamoDB is throttling")
        return self.table.update_item(**call)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.table, name)


@pytest.fixture
def table(jobs):
    return SpyTable(jobs._table)


def used(table, counter_id: str) -> int | None:
    item = table.get_item(Key={"job_id": counter_id}, ConsistentRead=True).get("Item")
    return None if item is None else int(item["used"])


def quota(table, per_key: int = 1000, per_deployment: int = 10000, clock: Clock | None = None) -> DailyQuota:
    return DailyQuota(table, DailyCaps(per_key, per_deployment), clock=clock or Clock())


# --- the counters ------------------------------------------------------------------------------


def test_a_job_is_counted_by_one_conditional_update_per_counter_key_first(table):
    quota(table, per_key=5, per_deployment=50).take("key-one")

    assert [call["Key"] for call in table.updates] == [
        {"job_id": f"quota#key#key-one#{DAY}"},
        {"job_id": f"quota#all#{DAY}"},
    ]
    for call, cap in zip(table.updates, (5, 50), strict=True):
        assert call["UpdateExpression"] == "SET expires_at = :expires ADD used :one"
        assert call["ConditionExpression"] == "attribute_not_exists(used) OR used < :cap"
        assert call["ExpressionAttributeValues"] == {":one": 1, ":cap": cap, ":expires": EXPIRES}


def test_a_counter_is_never_a_job_it_carries_no_owner_date_or_shard(jobs, table):
    quota(table).take("key-one")

    for counter_id in (key_counter_id("key-one", DAY), deployment_counter_id(DAY)):
        item = table.get_item(Key={"job_id": counter_id})["Item"]
        assert item == {"job_id": counter_id, "used": 1, "expires_at": EXPIRES}
        assert not JOB_ID.match(counter_id)  # GET and DELETE never look it up
    # Neither the owner's listing nor the sweeper's index sees it.
    assert jobs.list_for_owner("key-one", status=None, limit=10, start_key=None)[0] == []
    assert jobs.overdue("9999-12-31T00:00:00.000Z") == []


def test_the_keys_cap_refuses_the_job_past_it_until_the_next_utc_midnight(table):
    caps = quota(table, per_key=2, per_deployment=100, clock=Clock(datetime(2026, 12, 2, 23, 59, 30, 250000, UTC)))
    caps.take("key-one")
    caps.take("key-one")

    with pytest.raises(errors.QuotaExceeded) as refused:
        caps.take("key-one")

    assert (refused.value.status, refused.value.code) == (429, "quota_exceeded")
    assert refused.value.headers == {"Retry-After": "30"}  # 29.75 s to midnight, rounded up
    assert "this API key's daily cap of 2 jobs" in refused.value.message
    assert "renews at 2026-12-03T00:00:00Z" in refused.value.message
    assert used(table, key_counter_id("key-one", DAY)) == 2
    assert used(table, deployment_counter_id(DAY)) == 2  # the refused job never reached it
    caps.take("key-two")  # another key has its own cap


def test_the_deployments_cap_refuses_every_key_and_gives_the_keys_unit_back(table):
    caps = quota(table, per_key=5, per_deployment=2)
    caps.take("key-one")
    caps.take("key-two")

    with pytest.raises(errors.QuotaExceeded, match="the deployment's daily cap of 2 jobs") as refused:
        caps.take("key-three")

    assert refused.value.headers == {"Retry-After": str(12 * 3600)}
    assert used(table, key_counter_id("key-three", DAY)) == 0
    assert used(table, deployment_counter_id(DAY)) == 2
    assert table.updates[-1]["UpdateExpression"] == "ADD used :minus_one"
    assert table.updates[-1]["ExpressionAttributeValues"][":minus_one"] == -1


def test_counters_start_again_on_the_next_utc_day(table):
    clock = Clock(datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC))
    caps = quota(table, per_key=1, clock=clock)
    caps.take("key-one")
    with pytest.raises(errors.QuotaExceeded):
        caps.take("key-one")

    clock.now += timedelta(seconds=1)
    caps.take("key-one")

    assert used(table, key_counter_id("key-one", "2026-12-03")) == 1


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 12, 2, 0, 0, tzinfo=UTC), 86400),
        (datetime(2026, 12, 2, 12, 0, tzinfo=UTC), 43200),
        (datetime(2026, 12, 2, 23, 59, 59, 999000, tzinfo=UTC), 1),
        (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), 3600),  # over the year's end
        (datetime(2026, 12, 2, 3, 0, tzinfo=timezone(timedelta(hours=-5))), 57600),  # 08:00 UTC
    ],
)
def test_retry_after_is_the_seconds_until_the_next_utc_midnight_at_least_one(now, seconds):
    assert seconds_until_midnight(now) == seconds


def test_a_cap_of_zero_is_off_and_counts_nothing():
    table = SpyTable(None)
    caps = quota(table, per_key=0, per_deployment=0)
    for _ in range(3):
        caps.take("key-one")

    assert table.updates == []


def test_a_counter_that_cannot_be_written_refuses_the_job_and_gives_the_keys_unit_back(jobs):
    table = SpyTable(jobs._table, fail_on=deployment_counter_id(DAY))
    novita = RecordingNovita()

    with pytest.raises(errors.WorkflowUnavailable, match="nothing was created"):
        submit(jobs, novita=novita, quota=quota(table))

    assert novita.started == []
    assert used(table, key_counter_id("key-one", DAY)) == 0


# --- the submit path ---------------------------------------------------------------------------


def test_a_submitted_job_is_counted_for_its_key_and_the_deployment(jobs, table):
    submit(jobs, quota=quota(table))

    assert used(table, key_counter_id("key-one", DAY)) == 1
    assert used(table, deployment_counter_id(DAY)) == 1


def test_past_the_cap_the_upstream_is_not_called_and_nothing_is_recorded(jobs, table):
    novita, sfn = RecordingNovita(), RecordingStepFunctions()
    caps = quota(table, per_key=1)
    submit(jobs, novita=novita, sfn=sfn, quota=caps)

    with pytest.raises(errors.QuotaExceeded):
        submit(jobs, novita=novita, sfn=sfn, quota=caps)

    assert len(novita.started) == len(sfn.starts) == 1
    assert len(jobs.list_for_owner("key-one", status=None, limit=10, start_key=None)[0]) == 1


def test_a_request_refused_before_the_upstream_counts_nothing(jobs, table):
    with pytest.raises(errors.InvalidRequest):
        submit(jobs, quota=quota(table), webhook_url="https://10.0.0.8/hook")

    assert table.updates == []


SURELY_REFUSED = [
    UpstreamRejected("bad prompt", status=400, reason="ILLEGAL_PROMPT"),
    UpstreamRateLimited("slow down", retry_after=3),
    UpstreamUnavailable("the upstream could not be reached: NewConnectionError"),  # never connected
    UpstreamUnavailable("the upstream answered HTTP 503", status=503),
]
OUTCOME_UNKNOWN = [
    UpstreamTimeout("the upstream did not answer: ReadTimeoutError"),
    UpstreamUnavailable("the upstream accepted the task but sent no task_id", status=200),
]


def test_a_job_the_upstream_surely_refused_gives_its_units_back(jobs, table):
    for refusal in SURELY_REFUSED:
        with pytest.raises(errors.ServiceError):
            submit(jobs, novita=RecordingNovita(error=refusal), quota=quota(table))

        assert used(table, key_counter_id("key-one", DAY)) == 0, refusal
        assert used(table, deployment_counter_id(DAY)) == 0, refusal


def test_a_job_whose_upstream_outcome_is_unknown_keeps_its_units(jobs, table):
    for unknown in OUTCOME_UNKNOWN:
        with pytest.raises(errors.ServiceError):
            submit(jobs, novita=RecordingNovita(error=unknown), quota=quota(table))

    assert used(table, key_counter_id("key-one", DAY)) == len(OUTCOME_UNKNOWN)
    assert used(table, deployment_counter_id(DAY)) == len(OUTCOME_UNKNOWN)


# --- replays -----------------------------------------------------------------------------------


@pytest.fixture
def routes(jobs, monkeypatch):
    """functions/api/image_routes with a runtime on the moto tables and recording stand-ins."""
    monkeypatch.syspath_prepend(str(ROOT / "functions" / "api"))
    import image_routes

    from zimage.runtime import Runtime

    template = load_template()
    spec = Resolver(template, {}).resolve(template["Resources"]["IdempotencyTable"]["Properties"])
    boto3.resource("dynamodb").create_table(
        TableName="unit-idempotency",
        BillingMode=spec["BillingMode"],
        AttributeDefinitions=spec["AttributeDefinitions"],
        KeySchema=spec["KeySchema"],
    )
    runtime = Runtime(
        image_routes.runtime.settings._replace(
            jobs_table="unit-jobs",
            idempotency_table="unit-idempotency",
            state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:zimage-jobs",
            max_jobs_per_key_per_day=1,
        )
    )
    runtime.__dict__.update(jobs_table=jobs._table, jobs=jobs, novita=RecordingNovita(), sfn=RecordingStepFunctions())
    monkeypatch.setattr(image_routes, "runtime", runtime)
    image_routes.idempotent_start_job.cache_clear()
    yield image_routes
    image_routes.idempotent_start_job.cache_clear()
    sys.modules.pop("image_routes", None)


@pytest.mark.filterwarnings("ignore:Couldn't determine the remaining time left")
def test_an_idempotent_replay_returns_the_job_without_counting_it(routes, jobs):
    submission = {"owner": "key-one", "idempotency_key": "order-7", "request": {"prompt": "a red fox"}}
    first = routes.idempotent_start_job()(submission=submission)

    # The key's cap of one is now reached, yet the replay gets its job.
    replay = routes.idempotent_start_job()(submission=submission)

    assert replay == first
    assert len(routes.runtime.novita.started) == 1
    assert used(jobs._table, key_counter_id("key-one", datetime.now(UTC).date().isoformat())) == 1
    with pytest.raises(errors.QuotaExceeded):  # a new Idempotency-Key is a new job
        routes.idempotent_start_job()(submission={**submission, "idempotency_key": "order-8"})
