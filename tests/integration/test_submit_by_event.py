"""Submit by event on the local stack: requested events put on the bus, the requests rule and
queue, the submit worker under its MaximumConcurrency, and one outcome event per request, with
the upstream rate-limiting part of the burst."""

from __future__ import annotations

import json
import time
import uuid

import jsonschema
import pytest

from reliability.event_burst import OUTCOMES, TIMED_OUT, OutcomeTap, put_requests, request_burst
from tests.conftest import ROOT

DETAIL_SCHEMA = json.loads((ROOT / "docs" / "events" / "image-generation-detail.schema.json").read_text())
REJECTED_SCHEMA = json.loads((ROOT / "docs" / "events" / "image-generation-rejected-detail.schema.json").read_text())
# How long the burst may take on a busy machine; a deadline, not a speed target.
BURST_SECONDS = 120


@pytest.fixture(scope="module")
def outcomes(stack):
    """Every zimage event on the stack's bus, as a pipeline's own rule and queue would see them."""
    return OutcomeTap(stack, name="test-requests-outcomes")


def test_a_burst_of_requests_ends_in_one_outcome_each_and_one_upstream_task_per_valid_request(
    stack, emulator, outcomes
):
    # GIVEN an upstream that refuses every third submit for its rate limit
    emulator.configure(rate_limit_every=3)
    tasks_before = len(emulator.tasks)
    burst = request_burst(valid=100, invalid=4, repeated=6, run=uuid.uuid4().hex[:8])

    # WHEN they are all put at once
    put_requests(stack, burst.events)

    # THEN each request ends with exactly one outcome event carrying its metadata
    seen = outcomes.until(burst.answered, timeout=BURST_SECONDS)
    by_request = burst.outcomes_by_request(seen)
    assert set(by_request) == set(burst.expected), sorted(set(burst.expected) - set(by_request))[:5]
    assert {request: len(events) for request, events in by_request.items() if len(events) != 1} == {}
    for request, [event] in by_request.items():
        assert event["detail"]["metadata"] == burst.expected[request]["metadata"]
        if burst.expected[request]["valid"] and event["detail-type"] == "Image Generation Rejected":
            # A submit the upstream did not answer within UpstreamReadTimeoutSeconds may have made
            # a task, so it is rejected, never retried: the one other end a valid request may have.
            assert event["detail"]["error"]["code"] == TIMED_OUT, event
        elif burst.expected[request]["valid"]:
            assert event["detail-type"] == "Image Generation Succeeded", event
            jsonschema.validate(event["detail"], DETAIL_SCHEMA)
            assert event["detail"]["request"]["source"] == burst.source
        else:
            assert event["detail-type"] == "Image Generation Rejected", event
            jsonschema.validate(event["detail"], REJECTED_SCHEMA)
            assert event["detail"]["error"]["code"] == "invalid_request"
    # and the upstream saw exactly one task per valid request, though a third were refused at first
    new_tasks = list(emulator.tasks.values())[tasks_before:]
    assert sorted(task.prompt for task in new_tasks) == sorted(burst.valid_prompts)
    assert emulator.rate_limited >= 10


def test_a_job_made_from_an_event_is_no_api_keys(stack, emulator, outcomes, api):
    # GIVEN one requested event that made a job
    burst = request_burst(valid=1, invalid=0, repeated=0, run=uuid.uuid4().hex[:8])
    put_requests(stack, burst.events)
    [[event]] = burst.outcomes_by_request(outcomes.until(burst.answered, timeout=30)).values()

    # THEN the job is the event source's: an API key reads it as none, and never lists it
    job_id = event["detail"]["id"]
    assert api.request("GET", f"/v1/images/{job_id}").status == 404
    assert job_id not in {item["id"] for item in api.request("GET", "/v1/images?limit=100").json()["items"]}
    from zimage.runtime import shared_runtime

    assert shared_runtime().jobs.get(job_id).owner == f"events:{burst.source}"


def test_our_own_events_are_never_taken_as_requests(stack, emulator, outcomes):
    # GIVEN an event with our own source that looks like a request
    tasks_before = len(emulator.tasks)
    stack.client("events").put_events(
        Entries=[
            {
                "Source": "zimage",
                "DetailType": "Image Generation Requested",
                "Detail": json.dumps({"prompt": "a loop", "metadata": {"n": "loop"}}),
                "EventBusName": stack.event_bus,
            }
        ]
    )

    # THEN nothing answers it: the requests rule takes any source but ours
    time.sleep(2)
    assert len(emulator.tasks) == tasks_before
    answers = [
        e for e in outcomes.drain() if e["detail-type"] in OUTCOMES and e["detail"].get("metadata") == {"n": "loop"}
    ]
    assert answers == []


def test_a_batch_left_wholly_for_later_is_an_answer_not_a_function_error(stack, emulator):
    # GIVEN a requested event the upstream refuses for its rate limit, as a queued record
    emulator.configure(rate_limit_every=1)
    body = json.dumps(
        {
            "id": f"ev-{uuid.uuid4()}",
            "source": "test.later",
            "detail-type": "Image Generation Requested",
            "detail": {"prompt": "a fox"},
        }
    )
    record = {
        "messageId": "m-1",
        "receiptHandle": "not-a-real-handle",  # hiding it fails; the queue's own timeout would serve
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": str(int(time.time() * 1000))},
    }

    # WHEN the worker takes it
    answer, error = stack.invoke("SubmitWorkerFunction", json.dumps({"Records": [record]}))

    # THEN it reports the one message as left for later, without failing the invocation
    assert error is None
    assert json.loads(answer) == {"batchItemFailures": [{"itemIdentifier": "m-1"}]}
