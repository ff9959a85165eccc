"""The Novita key and the webhook signing secret never appear in logs, job records, events,
answers or error messages, through a full run that succeeds, fails and delivers a webhook."""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

from moto.events.models import EventsBackend

from local.novita_emulator import EmulatorSettings
from local.stack import DEV_API_KEY
from tests.integration.conftest import ApiClient


@contextmanager
def powertools_log_lines() -> Iterator[io.StringIO]:
    """Every line the service's Powertools loggers write, as they write it, at DEBUG.

    Powertools' Logger writes JSON to the stdout it found when it was made (here pytest's own
    capture, which neither caplog nor capfd reads) with the `extra` fields in the line. A
    handler with the logger's own formatter on each Powertools logger sees exactly those lines.
    """
    lines = io.StringIO()
    loggers = [
        logger for logger in list(logging.Logger.manager.loggerDict.values()) if isinstance(logger, logging.Logger)
    ]
    services = [logger for logger in loggers if getattr(logger, "powertools_handler", None)]
    assert services, "no Powertools logger is configured: the stack has not loaded the handlers"
    family = [logger for logger in loggers if any(logger.name.split(".")[0] == service.name for service in services)]
    levels = {logger: logger.level for logger in family}
    handlers = {}
    for service in services:
        handler = logging.StreamHandler(lines)
        handler.setFormatter(service.powertools_handler.formatter)  # the same JSON, extras included
        service.addHandler(handler)
        handlers[service] = handler
    for logger in family:
        logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for service, handler in handlers.items():
            service.removeHandler(handler)
        for logger, level in levels.items():
            logger.setLevel(level)


@contextmanager
def events_sent() -> Iterator[list[dict]]:
    """Every entry put on any EventBridge bus, by the state machine or by a function."""
    sent: list[dict] = []
    put_events = EventsBackend.put_events

    def recording(backend: EventsBackend, events: list[dict]) -> list[dict]:
        sent.extend(events)
        return put_events(backend, events)

    with mock.patch.object(EventsBackend, "put_events", recording):
        yield sent


def every_record(stack) -> list[dict]:
    dynamodb = stack.client("dynamodb")
    return [
        item
        for table in dynamodb.list_tables()["TableNames"]
        for page in dynamodb.get_paginator("scan").paginate(TableName=table)
        for item in page["Items"]
    ]


def every_history(stack) -> list[list[dict]]:
    sfn = stack.client("stepfunctions")
    machines = [m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]]
    executions = [
        e["executionArn"]
        for arn in machines
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn)
        for e in page["executions"]
    ]
    return [
        page["events"]
        for arn in executions
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=arn)
    ]


def test_no_secret_leaks_anywhere(stack, emulator, caplog, capfd, monkeypatch):
    # Everything the service's own code logs, at its most verbose, loggers made during the run
    # included. (botocore's DEBUG logging, off unless someone turns it on, prints whole
    # responses, secrets included.)
    caplog.set_level(logging.INFO)
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    novita_key = EmulatorSettings().api_key
    secrets_client = stack.client("secretsmanager")
    name = next(s["Name"] for s in secrets_client.list_secrets()["SecretList"] if "WebhookSigningSecret" in s["Name"])
    signing_secret = secrets_client.get_secret_value(SecretId=name)["SecretString"]
    received: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])) + str(self.headers).encode())
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    api = ApiClient(stack.api_url, DEV_API_KEY)
    answers = []
    try:
        with powertools_log_lines() as logged, events_sent() as events:
            ok = api.submit(webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook")
            answers.append(json.dumps(api.wait(ok["id"])))
            emulator.configure(outcome="fail", fail_reason="refused")
            answers.append(json.dumps(api.wait(api.submit()["id"])))
            emulator.configure(image_status=403, outcome="succeed")
            answers.append(json.dumps(api.wait(api.submit()["id"], timeout=30)))
            emulator.reset()
            emulator.script("submit", {"status": 403, "body": {"code": 403, "reason": "INVALID_API_KEY"}})
            answers.append(api.request("POST", "/v1/images", body={"prompt": "x"}).data.decode())
            canceled = api.request("DELETE", f"/v1/images/{api.submit()['id']}")
            answers.append(canceled.data.decode())
            stack.wait_until_idle()
            deadline = time.monotonic() + 5  # the webhook travels bus -> queue -> sender
            while not received and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        server.shutdown()

    log_lines = logged.getvalue()
    records = json.dumps(every_record(stack), default=str)
    histories = json.dumps(every_history(stack), default=str)
    out, err = capfd.readouterr()
    # What was searched: the service's own JSON lines, its events, records and histories.
    lines = [json.loads(line) for line in log_lines.splitlines()]
    assert {"job started", "image stored", "job failed", "deployment misconfigured"} <= {
        line["message"] for line in lines
    }
    assert any(line.get("task_id") for line in lines)  # extra fields are in what was searched
    assert {e["DetailType"] for e in events} >= {
        "Image Generation Succeeded",
        "Image Generation Failed",
        "Image Generation Canceled",
    }
    assert ok["id"] in records and ok["id"] in histories
    assert received, "the webhook was not delivered"
    everything = "\n".join(
        [
            log_lines,
            caplog.text,
            out,
            err,
            json.dumps(events, default=str),
            records,
            histories,
            *answers,
            *(r.decode() for r in received),
        ]
    )
    assert novita_key not in everything
    assert signing_secret not in everything
