"""The submit path on its own: what is recorded, what the workflow is given, and that a job the
workflow could not take is not left behind. moto in-process for the table; the upstream and
Step Functions are stand-ins that record their calls."""

from __future__ import annotations

import json
import time

import pytest

from zimage import errors
from zimage.api.request import CreateImageRequest
from zimage.api.submit import RECORD_RESERVE_SECONDS, SubmitDependencies, execution_arn_for, submit_job
from zimage.jobs.model import QUEUED
from zimage.upstream.errors import UpstreamRateLimited
from zimage.workflow.timing import WorkflowTiming

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:zimage-jobs"


class RecordingNovita:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.started: list[dict] = []

    def start_task(self, **task: object) -> str:
        if self.error:
            raise self.error
        self.started.append(task)
        return f"task-{len(self.started)}"


class RecordingStepFunctions:
    def __init__(self, error: Exception | None = None):
        self.error = error
        self.starts: list[dict] = []

    def start_execution(self, **call: str) -> dict:
        if self.error:
            raise self.error
        self.starts.append(call)
        return {"executionArn": execution_arn_for(call["stateMachineArn"], call["name"])}


class CountingQuota:
    """The daily caps' stand-in: which owners took a unit."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    def take(self, owner: str) -> str:
        self.taken.append(owner)
        return owner

    def give_back(self, taken: str) -> None:
        self.taken.remove(taken)


def submit(jobs, *, novita=None, sfn=None, workflow_type="STANDARD", quota=None, function_ends_at=None, **request):
    deps = SubmitDependencies(
        novita=novita or RecordingNovita(),
        jobs=jobs,
        sfn=sfn or RecordingStepFunctions(),
        state_machine_arn=STATE_MACHINE,
        timing=WorkflowTiming(execution_timeout_seconds=290, poll_turn_seconds=60),
        retention_days=30,
        workflow_type=workflow_type,
        quota=quota,
        function_ends_at=function_ends_at,
    )
    return submit_job(CreateImageRequest.model_validate({"prompt": "a red fox", **request}), owner="key-one", deps=deps)


def test_the_job_is_recorded_queued_and_handed_to_one_execution_named_after_it(jobs):
    sfn = RecordingStepFunctions()

    job = submit(jobs, sfn=sfn, size="768*512", seed=7)

    stored = jobs.get(job.job_id)
    assert (stored.status, stored.task_id, stored.size, stored.seed) == (QUEUED, "task-1", "768*512", 7)
    [start] = sfn.starts
    assert start["name"] == job.job_id
    workflow_input = json.loads(start["input"])
    assert workflow_input["job_id"] == job.job_id
    assert workflow_input["task_id"] == "task-1"
    assert "prompt" not in workflow_input  # ids and numbers only


def test_a_standard_execution_is_recorded_so_a_cancel_can_stop_it(jobs):
    job = submit(jobs, workflow_type="STANDARD")

    expected = f"arn:aws:states:us-east-1:123456789012:execution:zimage-jobs:{job.job_id}"
    assert jobs.get(job.job_id).execution_arn == expected


def test_an_express_execution_is_not_recorded_since_its_arn_is_only_known_after_the_start(jobs):
    job = submit(jobs, workflow_type="EXPRESS")

    assert jobs.get(job.job_id).execution_arn is None


def test_a_workflow_that_cannot_start_leaves_no_job_and_says_to_retry(jobs):
    with pytest.raises(errors.WorkflowUnavailable, match="nothing was created"):
        submit(jobs, sfn=RecordingStepFunctions(error=RuntimeError("throttled")))

    assert jobs.list_for_owner("key-one", status=None, limit=10, start_key=None)[0] == []


def test_an_upstream_refusal_creates_nothing(jobs):
    sfn = RecordingStepFunctions()
    novita = RecordingNovita(error=UpstreamRateLimited("slow down", retry_after=7))

    with pytest.raises(errors.ModelRateLimited) as refused:
        submit(jobs, novita=novita, sfn=sfn)

    assert refused.value.headers == {"Retry-After": "7"}
    assert sfn.starts == []
    assert jobs.list_for_owner("key-one", status=None, limit=10, start_key=None)[0] == []


def test_a_private_webhook_address_is_refused_before_the_upstream_is_paid(jobs):
    novita = RecordingNovita()

    with pytest.raises(errors.InvalidRequest):
        submit(jobs, novita=novita, webhook_url="https://10.0.0.8/hook")

    assert novita.started == []


def test_metadata_and_the_origin_are_recorded_with_the_job_and_shown_unchanged(jobs):
    job = submit(jobs, metadata={"order": "A-1042", "empty": ""})

    stored = jobs.get(job.job_id)
    assert stored.metadata == {"order": "A-1042", "empty": ""}
    assert stored.to_view()["metadata"] == {"order": "A-1042", "empty": ""}
    assert stored.to_event_detail()["metadata"] == {"order": "A-1042", "empty": ""}
    assert "request" not in stored.to_event_detail()  # made over HTTP


def test_a_job_made_from_an_event_names_its_request_and_counts_as_the_events_owner(jobs):
    from zimage.jobs.quota import DailyCaps, DailyQuota

    quota = DailyQuota(jobs._table, DailyCaps(per_key=2, per_deployment=100))
    origin = {"source": "acme.orders", "event_id": "ev-1", "idempotency_key": "order-7"}
    deps = SubmitDependencies(
        novita=RecordingNovita(),
        jobs=jobs,
        sfn=RecordingStepFunctions(),
        state_machine_arn=STATE_MACHINE,
        timing=WorkflowTiming(execution_timeout_seconds=290, poll_turn_seconds=60),
        retention_days=30,
        workflow_type="STANDARD",
        quota=quota,
    )
    request = CreateImageRequest.model_validate({"prompt": "a red fox"})

    job = submit_job(request, owner="events:acme.orders", deps=deps, origin=origin)
    submit_job(request, owner="events:acme.billing", deps=deps)

    assert jobs.get(job.job_id).to_event_detail()["request"] == origin
    assert jobs.get(job.job_id).owner == "events:acme.orders"
    # Every source counts as one owner, "events": the third job is over its cap of 2.
    with pytest.raises(errors.QuotaExceeded) as refused:
        submit_job(request, owner="events:acme.third", deps=deps)
    assert "the event sources' daily cap of 2 jobs" in refused.value.message


def test_the_upstreams_submit_ends_in_time_to_record_the_job_before_the_functions_timeout(jobs):
    novita = RecordingNovita()

    submit(jobs, novita=novita, function_ends_at=time.time() + 30)

    [task] = novita.started
    # what is left of the invocation, less the time to record the job and start its workflow
    assert 30 - RECORD_RESERVE_SECONDS - 1 < task["within"] <= 30 - RECORD_RESERVE_SECONDS


def test_with_too_little_time_left_nothing_is_started_nor_counted(jobs):
    novita, quota = RecordingNovita(), CountingQuota()

    with pytest.raises(errors.WorkflowUnavailable):
        submit(jobs, novita=novita, quota=quota, function_ends_at=time.time() + RECORD_RESERVE_SECONDS + 1)

    assert novita.started == [] and quota.taken == []
