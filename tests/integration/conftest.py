"""One local stack for the whole integration run: moto over HTTP, the real handlers, the real
state machine file, the Novita emulator. Waits are short so each job ends in seconds."""

from __future__ import annotations

import json
import time

import pytest
import urllib3

from local.novita_emulator import NovitaEmulator
from local.stack import DEV_API_KEY, LocalStack
from tests.conftest import LISTING_API_KEY, OTHER_API_KEY  # noqa: F401  (the tests import them from here)
from zimage.jobs.model import TERMINAL_STATUSES


class ApiClient:
    """Talks to the local stack over real HTTP, as any client would."""

    def __init__(self, base_url: str, api_key: str | None = DEV_API_KEY):
        self.base_url = base_url
        self.api_key = api_key
        self.http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=30))

    def request(
        self, method: str, path: str, *, body: object = None, raw: bytes | None = None, headers: dict | None = None
    ) -> urllib3.BaseHTTPResponse:
        sent = {"Content-Type": "application/json"}
        if self.api_key:
            sent["x-api-key"] = self.api_key
        sent.update(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        return self.http.request(method, self.base_url + path, body=data, headers=sent)

    def submit(self, **fields: object) -> dict:
        answer = self.request("POST", "/v1/images", body={"prompt": "a red fox in snow", **fields})
        assert answer.status == 202, answer.data
        return answer.json()

    def get(self, job_id: str) -> dict:
        answer = self.request("GET", f"/v1/images/{job_id}")
        assert answer.status == 200, answer.data
        return answer.json()

    def wait(self, job_id: str, timeout: float = 30) -> dict:
        """Poll GET until the job ends; fails the test on a deadline instead of hanging."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(job_id)
            if job["status"] in TERMINAL_STATUSES:
                return job
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")


@pytest.fixture
def api(stack: LocalStack, emulator: NovitaEmulator) -> ApiClient:
    return ApiClient(stack.api_url)
