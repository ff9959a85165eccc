"""`make run` (python -m local run) as a user starts it, in a process of its own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import urllib3

from local.stack import free_port
from tests.conftest import ROOT


def test_make_run_serves_several_keys_and_each_sees_only_its_own_jobs(tmp_path):
    # GIVEN the local stack started with two keys
    port = free_port()
    env = {**os.environ, "PORT": str(port), "API_KEY": "key-one, key-two", "PYTHONPATH": str(ROOT)}
    env.pop("NOVITA_BASE_URL", None)
    log = (tmp_path / "run.log").open("w+")
    server = subprocess.Popen(
        [sys.executable, "-m", "local", "run"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it." not in (tmp_path / "run.log").read_text():
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        banner = (tmp_path / "run.log").read_text()
        url = f"http://127.0.0.1:{port}"

        def call(method: str, path: str, key: str, body: dict | None = None) -> urllib3.BaseHTTPResponse:
            headers = {"x-api-key": key, "Content-Type": "application/json"}
            return urllib3.request(method, url + path, headers=headers, body=json.dumps(body) if body else None)

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
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        log.close()
