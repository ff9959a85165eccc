"""`make run` (python -m local run) as a user starts it, in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import urllib3

from local.stack import DEV_API_KEY, free_port
from tests.conftest import ROOT

Call = Callable[..., urllib3.BaseHTTPResponse]


@contextmanager
def make_run(tmp_path: Path, **env: str) -> Iterator[tuple[Call, Path]]:
    """`python -m local run` on a free port until its banner is out; then (call, its output's
    file). It is stopped as Ctrl-C would, and must exit 0."""
    port = free_port()
    environment = {**os.environ, "PORT": str(port), "PYTHONPATH": str(ROOT), **env}
    environment.pop("NOVITA_BASE_URL", None)
    output = tmp_path / "run.log"
    log = output.open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "local", "run"], env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, key: str, body: dict | None = None) -> urllib3.BaseHTTPResponse:
        headers = {"x-api-key": key, "Content-Type": "application/json"}
        return urllib3.request(method, url + path, headers=headers, body=json.dumps(body) if body else None)

    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it." not in output.read_text():
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield call, output
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log.close()


def test_make_run_serves_several_keys_and_each_sees_only_its_own_jobs(tmp_path):
    # GIVEN the local stack started with two keys
    with make_run(tmp_path, API_KEY="key-one, key-two") as (call, output):
        banner = output.read_text()

        # WHEN the first key makes a job
        made = call("POST", "/v1/images", "key-one", {"prompt": "a red fox", "size": "256*256"})

        # THEN both keys are accepted, and the job is the first key's alone
        assert "API key:   key-one, key-two" in banner
        assert made.status == 202, made.data
        job_id = made.json()["id"]
        assert call("GET", f"/v1/images/{job_id}", "key-one").status == 200
        assert call("GET", f"/v1/images/{job_id}", "key-two").status == 404
        assert call("GET", "/v1/images", "key-two").json()["items"] == []
        assert call("GET", "/v1/images", "key-three").status == 403


def test_make_run_prints_no_warnings_and_each_line_names_its_own_function(tmp_path):
    with make_run(tmp_path) as (call, output):
        # WHEN a first call counts nothing (Powertools warned of it), then jobs run at the same time
        assert call("GET", "/v1/images", DEV_API_KEY).status == 200

        def one_job(seed: int) -> str:
            job = call("POST", "/v1/images", DEV_API_KEY, {"prompt": "a red fox", "size": "256*256", "seed": seed})
            deadline = time.monotonic() + 30
            while (status := call("GET", f"/v1/images/{job.json()['id']}", DEV_API_KEY).json()["status"]) in (
                "queued",
                "processing",
            ):
                assert time.monotonic() < deadline
                time.sleep(0.2)
            return status

        with ThreadPoolExecutor(6) as pool:
            assert list(pool.map(one_job, range(6))) == ["succeeded"] * 6

    # THEN the output is the banner and JSON lines, no warning, each line from the function it names
    printed = output.read_text()
    assert "Warning" not in printed, printed
    lines = [json.loads(line) for line in printed.splitlines() if line.startswith("{")]
    writers = {"job started": "ApiFunction", "image stored": "PollFunction"}  # each logged by one function only
    assert [(line["message"], line["function_name"]) for line in lines if line["message"] in writers] == [
        (line["message"], writers[line["message"]]) for line in lines if line["message"] in writers
    ]
    assert (
        sorted(line["message"] for line in lines if line["message"] in writers)
        == ["image stored"] * 6 + ["job started"] * 6
    )


def test_make_run_writes_its_facts_and_takes_a_requested_event_end_to_end(tmp_path):
    import boto3

    facts_file = tmp_path / "local-stack.json"
    with make_run(tmp_path, LOCAL_STACK_FACTS=str(facts_file)) as (call, output):
        # GIVEN the facts `make run` wrote, and a queue of ours that hears the stack's outcome events
        facts = json.loads(facts_file.read_text())
        assert set(facts) == {
            "api_url",
            "api_key",
            "aws_endpoint_url",
            "region",
            "event_bus_name",
            "webhook_signing_secret",
        }
        assert facts["api_key"] == DEV_API_KEY and facts["webhook_signing_secret"] in output.read_text()
        aws = {
            "endpoint_url": facts["aws_endpoint_url"],
            "region_name": facts["region"],
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }
        events, sqs = boto3.client("events", **aws), boto3.client("sqs", **aws)
        queue = sqs.create_queue(QueueName="my-pipeline-outcomes")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(
            Name="my-outcomes", EventBusName=facts["event_bus_name"], EventPattern=json.dumps({"source": ["zimage"]})
        )
        events.put_targets(
            Rule="my-outcomes", EventBusName=facts["event_bus_name"], Targets=[{"Id": "q", "Arn": queue_arn}]
        )

        # WHEN a pipeline puts a request on the bus, as docs/local-stack.md shows
        detail = {"prompt": "a red fox", "size": "256*256", "metadata": {"order": "A-1042"}}
        put = events.put_events(
            Entries=[
                {
                    "Source": "acme.orders",
                    "DetailType": "Image Generation Requested",
                    "Detail": json.dumps(detail),
                    "EventBusName": facts["event_bus_name"],
                }
            ]
        )
        assert put["FailedEntryCount"] == 0

        # THEN its outcome event comes back with its metadata, naming the request
        deadline, outcome = time.monotonic() + 60, None
        while outcome is None:
            assert time.monotonic() < deadline, output.read_text()[-3000:]
            for message in sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []):
                outcome = json.loads(message["Body"])
        assert outcome["detail-type"] == "Image Generation Succeeded", outcome
        assert outcome["detail"]["metadata"] == {"order": "A-1042"}
        assert outcome["detail"]["request"] == {"source": "acme.orders", "event_id": put["Entries"][0]["EventId"]}
        # and the job is no API key's
        assert call("GET", f"/v1/images/{outcome['detail']['id']}", DEV_API_KEY).status == 404
