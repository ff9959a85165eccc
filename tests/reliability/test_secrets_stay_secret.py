"""The Novita key and the webhook signing secret never appear in logs, job records, events,
answers or error messages, through a full run that succeeds, fails and delivers a webhook."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local.novita_emulator import EmulatorSettings
from local.stack import DEV_API_KEY
from tests.integration.conftest import ApiClient


def test_no_secret_leaks_anywhere(stack, emulator, caplog, capfd):
    # Everything the service's own code logs, at its most verbose. (botocore's DEBUG logging,
    # off unless someone turns it on, prints whole responses, secrets included.)
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="zimage")
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
        ok = api.submit(webhook_url=f"http://127.0.0.1:{server.server_address[1]}/hook")
        answers.append(json.dumps(api.wait(ok["id"])))
        emulator.configure(outcome="fail", fail_reason="refused")
        answers.append(json.dumps(api.wait(api.submit()["id"])))
        emulator.configure(image_status=403, outcome="succeed")
        answers.append(json.dumps(api.wait(api.submit()["id"], timeout=30)))
        emulator.reset()
        emulator.script("submit", {"status": 403, "body": {"code": 403, "reason": "INVALID_API_KEY"}})
        answers.append(api.request("POST", "/v1/images", body={"prompt": "x"}).data.decode())
        stack.wait_until_idle()
    finally:
        server.shutdown()

    records = json.dumps(stack.client("dynamodb").scan(TableName=stack.table)["Items"])
    histories = json.dumps(
        [
            stack.client("stepfunctions").get_execution_history(executionArn=e["executionArn"])["events"]
            for e in stack.client("stepfunctions").list_executions(stateMachineArn=stack.state_machine_arn)[
                "executions"
            ][-6:]
        ],
        default=str,
    )
    out, err = capfd.readouterr()
    everything = "\n".join([caplog.text, out, err, records, histories, *answers, *(r.decode() for r in received)])
    assert received, "the webhook was not delivered"
    assert novita_key not in everything
    assert signing_secret not in everything
