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
