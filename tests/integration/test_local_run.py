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
# Deadlines, not speed targets: the process shares the machine with the rest of the suite, and
# urllib3's module-level request() would give up after 3 s.
SLOW_MACHINE = urllib3.Timeout(connect=5, read=30)


@contextmanager
def make_run(tmp_path: Path, **env: str) -> Iterator[tuple[Call, Path]]:
    """`python -m local run` on a free port until its banner is out; then (call, its output's
    file). It is stopped as Ctrl-C would, and must exit 0."""
    port = free_port()
    # What it keeps across restarts goes to the test's folder, never to the developer's out/.
    environment = {**os.environ, "PORT": str(port), "PYTHONPATH": str(ROOT), "LOCAL_STATE_DIR": str(tmp_path / "state")}
    environment.pop("NOVITA_BASE_URL", None)
    environment.pop("FRESH", None)
    environment.update(env)
    output = tmp_path / f"run-{port}.log"
    log = output.open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "local", "run"], env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"

    def call(method: str, path: str, key: str, body: dict | None = None) -> urllib3.BaseHTTPResponse:
        headers = {"x-api-key": key, "Content-Type": "application/json"}
        return urllib3.request(
            method, url + path, headers=headers, body=json.dumps(body) if body else None, timeout=SLOW_MACHINE
        )

    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it." not in output.read_text():
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield call, output
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=90) == 0
        log.close()


def test_make_run_serves_several_keys_each_seeing_its_own_jobs_and_keeps_them_across_a_restart(tmp_path):
    # GIVEN the local stack started with two keys
    with make_run(tmp_path, API_KEY="key-one, key-two") as (call, output):
        banner = output.read_text()
        secret = banner.split("signed\n  with the secret ", 1)[1].split()[0]

        # WHEN the first key makes an image, then a job still running when the stack stops
        made = call("POST", "/v1/images", "key-one", {"prompt": "a kept fox", "size": "256*256"})

        # THEN both keys are accepted, the page is at the root, and the job is the first key's alone
        assert "API key:   key-one, key-two" in banner
        assert banner_value(output, "Page:") == f"{banner_value(output, 'API:')}/"
        assert made.status == 202, made.data
        job_id = made.json()["id"]
        assert call("GET", f"/v1/images/{job_id}", "key-two").status == 404
        assert call("GET", "/v1/images", "key-two").json()["items"] == []
        assert call("GET", "/v1/images", "key-three").status == 403
        done = wait_for_end(call, job_id, "key-one")
        assert done["status"] == "succeeded", done
        image = urllib3.request("GET", done["image"]["url"], timeout=SLOW_MACHINE).data
        emulator = banner_value(output, "upstream:")
        urllib3.request(
            "POST", f"{emulator}/_emulator/settings", body=json.dumps({"run_seconds": 120}), timeout=SLOW_MACHINE
        )
        running = call("POST", "/v1/images", "key-one", {"prompt": "a slow fox", "size": "256*256"}).json()

    # AND it starts again on the same folder, its keys in another order
    with make_run(tmp_path, API_KEY="key-two,key-one") as (call, output):
        banner = output.read_text()

        # THEN the image is back under its key, the running job ended as interrupted, the secret is the same
        assert f"with the secret {secret}" in banner
        assert "1 job(s) running at the last stop ended failed: interrupted" in banner
        kept = call("GET", f"/v1/images/{job_id}", "key-one").json()
        assert (kept["status"], kept["image"]["sha256"]) == ("succeeded", done["image"]["sha256"])
        assert urllib3.request("GET", kept["image"]["url"], timeout=SLOW_MACHINE).data == image
        interrupted = call("GET", f"/v1/images/{running['id']}", "key-one").json()
        assert (interrupted["status"], interrupted["error"]["code"]) == ("failed", "interrupted")
        assert [job["id"] for job in call("GET", "/v1/images", "key-one").json()["items"]] == [running["id"], job_id]
        assert call("GET", "/v1/images", "key-two").json()["items"] == []


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
    assert all(DEV_API_KEY not in json.dumps(line) for line in lines)  # the banner names it; no log line does
    writers = {"job started": "ApiFunction", "image stored": "PollFunction"}  # each logged by one function only
    assert [(line["message"], line["function_name"]) for line in lines if line["message"] in writers] == [
        (line["message"], writers[line["message"]]) for line in lines if line["message"] in writers
    ]
    assert (
        sorted(line["message"] for line in lines if line["message"] in writers)
        == ["image stored"] * 6 + ["job started"] * 6
    )


def banner_value(output: Path, label: str) -> str:
    line = next(line for line in output.read_text().splitlines() if line.strip().startswith(label))
    return line.split(label, 1)[1].split()[0]


def wait_for_end(call: Call, job_id: str, key: str) -> dict:
    deadline = time.monotonic() + 30
    while (job := call("GET", f"/v1/images/{job_id}", key).json())["status"] in ("queued", "processing"):
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    return job


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
