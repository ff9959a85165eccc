"""Completion events on EventBridge and signed webhooks, end to end on the local stack."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest
from standardwebhooks import Webhook

from tests.conftest import ROOT

DETAIL_SCHEMA = json.loads((ROOT / "docs" / "events" / "image-generation-detail.schema.json").read_text())


# --- a tap on the event bus ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def event_tap(stack):
    """A queue that receives every zimage event on the stack's bus, like a customer's rule."""
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="test-event-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="test-tap", EventBusName=stack.event_bus, EventPattern=json.dumps({"source": ["zimage"]}))
    events.put_targets(Rule="test-tap", EventBusName=stack.event_bus, Targets=[{"Id": "tap", "Arn": arn}])
    seen: list[dict] = []

    def events_for(job_id: str, *, settle: float = 1.0) -> list[dict]:
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            ):
                seen.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            time.sleep(0.1)
        return [event for event in seen if event["detail"].get("id") == job_id]  # a rejection has no job

    return events_for


def test_a_succeeded_job_emits_one_event_with_the_documented_detail(api, emulator, event_tap, stack):
    job = api.wait(api.submit(size="512*512")["id"])

    events = event_tap(job["id"])

    assert len(events) == 1
    event = events[0]
    assert (event["source"], event["detail-type"]) == ("zimage", "Image Generation Succeeded")
    jsonschema.validate(event["detail"], DETAIL_SCHEMA)
    assert event["detail"]["bucket"] == stack.bucket
    assert event["detail"]["key"] == f"images/{job['id']}"
    assert event["detail"]["image"]["sha256"] == job["image"]["sha256"]
    assert "url" not in event["detail"]["image"]


def test_a_failed_job_emits_one_failed_event(api, emulator, event_tap):
    emulator.configure(outcome="fail", fail_reason="nope")
    job = api.wait(api.submit()["id"])

    events = event_tap(job["id"])

    assert [event["detail-type"] for event in events] == ["Image Generation Failed"]
    jsonschema.validate(events[0]["detail"], DETAIL_SCHEMA)
    assert events[0]["detail"]["error"] == job["error"]


def test_a_job_failed_through_the_failure_path_emits_one_failed_event(api, emulator, event_tap):
    emulator.configure(image_status=404)
    job = api.wait(api.submit()["id"], timeout=30)

    events = event_tap(job["id"])

    assert [event["detail"]["error"]["code"] for event in events] == ["image_unavailable"]


def test_a_canceled_job_emits_one_canceled_event(api, emulator, event_tap):
    emulator.configure(outcome="never", eta_override=2)
    job = api.submit()
    api.request("DELETE", f"/v1/images/{job['id']}")
    api.request("DELETE", f"/v1/images/{job['id']}")  # a second cancel changes nothing

    events = event_tap(job["id"], settle=2.5)

    assert [event["detail-type"] for event in events] == ["Image Generation Canceled"]
    jsonschema.validate(events[0]["detail"], DETAIL_SCHEMA)


def test_the_sweeper_fails_and_announces_a_job_its_workflow_left_behind(stack, api, emulator, event_tap):
    # GIVEN a job still processing long after its deadline, with no workflow left to end it
    from zimage.jobs.model import Job, active_shard_for, new_job_id
    from zimage.runtime import shared_runtime

    job_id = new_job_id()
    shared_runtime().jobs.create(
        Job(
            job_id=job_id,
            owner="key-one",
            status="processing",
            prompt="an orphan",
            size="512*512",
            seed=-1,
            task_id="t-gone",
            created_at="2026-01-01T00:00:00.000Z",
            updated_at="2026-01-01T00:00:00.000Z",
            deadline_at="2026-01-01T00:04:00.000Z",
            expires_at=int(time.time()) + 600,
            active_shard=active_shard_for(job_id),
        )
    )

    # WHEN the scheduled sweep runs
    answer, error = stack.invoke("SweeperFunction", json.dumps({"source": "aws.scheduler"}))

    # THEN the job failed with a timeout, once, and its failed event went out
    assert error is None and json.loads(answer)["settled"] >= 1
    job = api.get(job_id)
    assert (job["status"], job["error"]["code"]) == ("failed", "timeout")
    assert [event["detail-type"] for event in event_tap(job_id)] == ["Image Generation Failed"]
    assert json.loads(stack.invoke("SweeperFunction", "{}")[0])["settled"] == 0


# --- webhooks -------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on loopback that answers with scripted statuses (then 200)."""

    def __init__(self, *statuses: int, delay: float = 0.0):
        self.statuses = list(statuses)
        self.delay = delay
        self.deliveries: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append((dict(self.headers.items()), body))
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/zimage?tenant=7"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(*statuses: int, delay: float = 0.0) -> Receiver:
        made.append(Receiver(*statuses, delay=delay))
        return made[-1]

    yield make
    for one in made:
        one.close()


def signing_secret(stack) -> str:
    client = stack.client("secretsmanager")
    name = next(s["Name"] for s in client.list_secrets()["SecretList"] if "WebhookSigningSecret" in s["Name"])
    return client.get_secret_value(SecretId=name)["SecretString"]


def wait_for_webhook(api, job_id: str, state: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(job_id)
        if job.get("webhook", {}).get("state") == state:
            return job
        time.sleep(0.2)
    raise AssertionError(f"webhook of {job_id} not {state}: {job.get('webhook')}")


def test_the_receiver_gets_the_final_job_signed(stack, api, emulator, receiver):
    hook = receiver()

    job = api.submit(webhook_url=hook.url)
    job = wait_for_webhook(api, job["id"], "delivered")

    assert len(hook.deliveries) == 1
    headers, body = hook.deliveries[0]
    verified = Webhook(signing_secret(stack)).verify(body, {k.lower(): v for k, v in headers.items()})
    assert verified["type"] == "image.succeeded"
    assert verified["data"]["id"] == job["id"]
    assert verified["data"]["image"]["url"].startswith("http")
    assert headers["webhook-id"] == f"msg_{job['id']}"
    assert job["webhook"]["attempts"] == 1 and job["webhook"]["last_status"] == 200


def test_metadata_travels_unchanged_to_get_the_list_the_event_and_the_webhook(api, emulator, event_tap, receiver):
    # GIVEN a job submitted with the caller's own metadata and a webhook
    metadata = {"order": "A-1042", "note": "ünïcode, spaces & symbols", "empty": ""}
    hook = receiver()

    # WHEN it ends and its webhook is delivered
    job = api.submit(webhook_url=hook.url, metadata=metadata)
    job = wait_for_webhook(api, job["id"], "delivered")

    # THEN every view of the job carries the metadata as it was given
    assert job["metadata"] == metadata
    listed = api.request("GET", "/v1/images?limit=100").json()["items"]
    assert next(item for item in listed if item["id"] == job["id"])["metadata"] == metadata
    [event] = event_tap(job["id"])
    jsonschema.validate(event["detail"], DETAIL_SCHEMA)
    assert event["detail"]["metadata"] == metadata
    assert "request" not in event["detail"]  # made over HTTP, not from an event
    [(_, body)] = hook.deliveries
    assert json.loads(body)["data"]["metadata"] == metadata


def test_a_receiver_that_fails_twice_gets_three_deliveries_with_one_id(api, emulator, receiver):
    hook = receiver(500, 500)

    job = api.submit(webhook_url=hook.url)
    job = wait_for_webhook(api, job["id"], "delivered")

    ids = {headers["webhook-id"] for headers, _ in hook.deliveries}
    assert len(hook.deliveries) == 3
    assert ids == {f"msg_{job['id']}"}
    assert job["webhook"]["attempts"] == 3


def test_a_receiver_that_never_answers_ends_in_the_dead_letter_queue(stack, api, emulator, receiver):
    hook = receiver(delay=2.5)  # longer than the 1 s delivery timeout of the test stack

    job = api.submit(webhook_url=hook.url)
    job = wait_for_webhook(api, job["id"], "failed", timeout=40)

    assert job["webhook"]["attempts"] == 3
    assert "did not answer" in job["webhook"]["last_error"]
    sqs = stack.client("sqs")
    dlq = sqs.get_queue_url(QueueName="zimage-local-WebhookDeadLetterQueue")["QueueUrl"]
    deadline = time.monotonic() + 15
    bodies: list[dict] = []
    while time.monotonic() < deadline and not any(b["detail"]["id"] == job["id"] for b in bodies):
        messages = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        bodies += [json.loads(m["Body"]) for m in messages]
    assert any(body["detail"]["id"] == job["id"] for body in bodies)


def test_a_job_without_a_webhook_shows_none(api, emulator):
    job = api.wait(api.submit()["id"])

    assert "webhook" not in job


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/hook", "https"),
        ("http://example.com/hook", "https"),
        ("https://user:pass@example.com/hook", "credentials"),
        ("https://10.0.0.8/hook", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://100.64.1.1/hook", "carrier-grade"),
        ("https://[fd00:ec2::254]/hook", "private"),
        ("https://0.0.0.0/hook", "resolves to"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("not a url", "needs a host"),
    ],
)
def test_a_webhook_url_the_service_will_not_call_is_a_400(api, emulator, url, message):
    answer = api.request("POST", "/v1/images", body={"prompt": "a fox", "webhook_url": url})

    assert answer.status == 400
    assert answer.json()["error"]["field"] == "webhook_url"
    assert message in answer.json()["error"]["message"]
    assert emulator.calls["submit"] == 0


def test_a_workflow_whose_job_no_longer_exists_ends_without_an_event(stack, event_tap):
    # GIVEN an execution for a job the table does not hold (removed by TTL, or never written)
    from zimage.jobs.model import new_job_id

    job_id = new_job_id()
    workflow_input = {"job_id": job_id, "task_id": "t-gone", "size": "512*512", "deadline": time.time() + 60}
    stack.client("stepfunctions").start_execution(
        stateMachineArn=stack.state_machine_arn, name=job_id, input=json.dumps({**workflow_input, "polls": 0})
    )

    # THEN it fails, and no consumer hears of a job it could not read
    execution = stack.finished_execution(job_id)
    assert execution["status"] == "FAILED"
    assert [
        e for e in stack.history_for(job_id) if e.get("stateEnteredEventDetails", {}).get("name") == "AnnounceFailed"
    ] == []
    assert event_tap(job_id) == []


def test_events_eventbridge_keeps_refusing_are_sent_later_by_the_sweeper(stack, api, emulator, event_tap):
    # GIVEN EventBridge refusing the workflow's events through all their retries
    from unittest import mock

    from moto.events.models import EventsBackend

    from zimage.runtime import shared_runtime

    def refusing(backend: EventsBackend, events: list[dict]) -> list[dict]:
        raise RuntimeError("EventBridge is down")

    with mock.patch.object(EventsBackend, "put_events", refusing):
        succeeded = api.submit()["id"]
        emulator.configure(outcome="fail")
        failed = api.submit()["id"]
        jobs_seen = {job_id: api.wait(job_id) for job_id in (succeeded, failed)}
        executions = {job_id: stack.finished_execution(job_id, timeout=60) for job_id in (succeeded, failed)}

    # THEN each job stands as it ended, its execution ends as the job did, no event went out,
    # and both jobs wait in the sweeper's index
    jobs = shared_runtime().jobs
    assert [jobs_seen[succeeded]["status"], jobs_seen[failed]["status"]] == ["succeeded", "failed"]
    assert [executions[succeeded]["status"], executions[failed]["status"]] == ["SUCCEEDED", "FAILED"]
    assert executions[failed]["error"] == "upstream_failed"
    for job_id in (succeeded, failed):
        assert event_tap(job_id, settle=0.2) == []
        assert jobs.get(job_id).active_shard is not None

    # WHEN the sweep runs after the jobs' deadlines
    answer, error = sweep_past_deadlines(stack, succeeded, failed)

    # THEN each event goes out once, and the jobs leave the index
    assert error is None and json.loads(answer)["announced_late"] >= 2
    assert [event["detail-type"] for event in event_tap(succeeded)] == ["Image Generation Succeeded"]
    assert [event["detail-type"] for event in event_tap(failed, settle=0.2)] == ["Image Generation Failed"]
    assert jobs.get(succeeded).active_shard is None and jobs.get(failed).active_shard is None


def test_a_turn_that_outlives_its_execution_still_yields_the_jobs_event(stack, api, emulator, event_tap):
    # GIVEN a turn that stores its image after its execution was stopped, as a hard timeout does
    # (no Catch sees it, and the Emit states never run)
    from local.novita_emulator import Fault
    from zimage.runtime import shared_runtime

    emulator.script("image", Fault(passthrough=True, delay=0.8))  # within the stack's 1 s read timeout
    job_id = api.submit(size="512*512")["id"]
    waited = time.monotonic() + 10
    while emulator.calls["image"] == 0 and time.monotonic() < waited:
        time.sleep(0.05)
    assert emulator.calls["image"] == 1
    stack.client("stepfunctions").stop_execution(executionArn=stack.execution_arn(job_id), cause="hard timeout")

    # THEN the job ends as the turn found it, with no event yet, and stays in the sweeper's index
    job = api.wait(job_id)
    assert job["status"] == "succeeded", job
    execution = stack.finished_execution(job_id)
    assert execution["status"] == "ABORTED"
    entered = [e.get("stateEnteredEventDetails", {}).get("name") for e in stack.history_for(job_id)]
    assert "AnnounceSucceeded" not in entered
    assert event_tap(job_id, settle=0.5) == []
    jobs = shared_runtime().jobs
    assert jobs.get(job_id).active_shard is not None

    # WHEN the sweeper runs once the execution's time has passed
    answer, error = sweep_past_deadlines(stack, job_id)

    # THEN the job's event goes out, about that job, and the job leaves the index
    assert error is None and json.loads(answer)["announced_late"] >= 1
    (event,) = event_tap(job_id)
    assert (event["detail-type"], event["detail"]["id"], event["detail"]["status"]) == (
        "Image Generation Succeeded",
        job_id,
        "succeeded",
    )
    assert jobs.get(job_id).active_shard is None


def sweep_past_deadlines(stack, *job_ids: str) -> tuple[bytes, str | None]:
    """Move the jobs' deadlines into the past, then run the sweeper as its schedule would."""
    from zimage.runtime import shared_runtime

    for job_id in job_ids:
        shared_runtime().jobs._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET deadline_at = :past",
            ExpressionAttributeValues={":past": "2026-01-01T00:00:00.000Z"},
        )
    return stack.invoke("SweeperFunction", "{}")
