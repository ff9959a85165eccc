"""The sample events in events/ (the ones `sam local invoke -e` takes) run through the real
handlers on the local stack."""

from __future__ import annotations

import json

from tests.conftest import load_event


def test_the_create_event_starts_a_job(stack, emulator):
    answer = stack.functions["ApiFunction"].handler(
        load_event("api_create_image.json"), stack.functions["ApiFunction"].context()
    )

    assert answer["statusCode"] == 202
    assert json.loads(answer["body"])["size"] == "1024*768"


def test_the_invalid_size_event_is_refused(stack, emulator):
    answer = stack.functions["ApiFunction"].handler(
        load_event("api_create_image_invalid_size.json"), stack.functions["ApiFunction"].context()
    )

    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["field"] == "size"


def test_the_get_event_for_an_unknown_job_is_404(stack, emulator):
    answer = stack.functions["ApiFunction"].handler(
        load_event("api_get_image.json"), stack.functions["ApiFunction"].context()
    )

    assert answer["statusCode"] == 404


def test_the_poll_and_failure_events_run(stack, emulator):
    poll, poll_error = stack.invoke("PollFunction", json.dumps(load_event("poll_first_turn.json")))
    failure, failure_error = stack.invoke(
        "RecordFailureFunction", json.dumps(load_event("record_failure_image_unavailable.json"))
    )

    # The sample job and task exist nowhere: the step ends the workflow instead of crashing.
    assert poll_error is None
    assert json.loads(poll)["status"] == "failed"
    assert json.loads(poll)["error"]["code"] == "job_missing"
    assert failure_error is None
    assert json.loads(failure)["error"]["code"] == "job_missing"


def test_the_sweeper_and_webhook_sender_events_run(stack, emulator):
    swept, sweep_error = stack.invoke("SweeperFunction", json.dumps(load_event("sweeper_schedule.json")))
    sent, send_error = stack.invoke("WebhookSenderFunction", json.dumps(load_event("webhook_sender_completion.json")))

    assert sweep_error is None
    assert set(json.loads(swept)) == {"settled", "announced_late"}
    # The sample job exists nowhere, so there is nothing to deliver and nothing to retry.
    assert send_error is None
    assert json.loads(sent) == {"batchItemFailures": []}


def test_the_health_event_checks_the_key(stack, emulator):
    answer = stack.functions["ApiFunction"].handler(
        load_event("api_check_health.json"), stack.functions["ApiFunction"].context()
    )

    assert answer["statusCode"] == 200
    assert json.loads(answer["body"])["checks"]["upstream_key"] == "accepted"


def test_the_submit_worker_events_start_a_job_and_reject_an_expired_request(stack, emulator):
    import time

    # The request's sample is sent now, as the queue would stamp it (the file's own time is past).
    request = load_event("submit_worker_request.json")
    request["Records"][0]["attributes"]["SentTimestamp"] = str(int(time.time() * 1000))
    tasks = len(emulator.tasks)

    started, start_error = stack.invoke("SubmitWorkerFunction", json.dumps(request))
    expired, expire_error = stack.invoke(
        "SubmitWorkerFunction", json.dumps(load_event("submit_worker_expired_request.json"))
    )

    assert (start_error, expire_error) == (None, None)
    assert json.loads(started) == {"batchItemFailures": []}
    assert json.loads(expired) == {"batchItemFailures": []}  # answered for good: rejected
    assert len(emulator.tasks) == tasks + 1  # the expired one never reached the upstream
