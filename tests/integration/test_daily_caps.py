"""The daily job caps at their edge, over real HTTP on the local stack: many concurrent submits,
exactly the cap accepted, the rest 429 quota_exceeded with Retry-After, the upstream paid for
exactly the cap, and the counters in the jobs table equal to it."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import urllib3

from zimage.jobs.quota import deployment_counter_id, key_counter_id, seconds_until_midnight
from zimage.runtime import shared_runtime

from .conftest import OTHER_API_KEY, ApiClient

CAP = 5
SUBMITS = 12
KEY_ONE, KEY_TWO = "key-one", "key-two"  # the ids of DEV_API_KEY and OTHER_API_KEY (tests/conftest.py)


@pytest.fixture
def caps(stack, emulator, monkeypatch):
    """Sets the caps as MaxJobsPerKeyPerDay / MaxJobsPerDay would, on today's fresh counters."""
    runtime = shared_runtime()
    # The stack runs with the template's defaults, which reached the API function's environment.
    assert runtime.settings.max_jobs_per_key_per_day == 1000
    assert runtime.settings.max_jobs_per_day == 10000
    table = stack.resource("dynamodb").Table(stack.table)
    day = datetime.now(UTC).date().isoformat()
    counters = [key_counter_id(KEY_ONE, day), key_counter_id(KEY_TWO, day), deployment_counter_id(day)]

    def used(counter_id: str) -> int:
        item = table.get_item(Key={"job_id": counter_id}, ConsistentRead=True).get("Item")
        return int(item["used"]) if item else 0

    def set_caps(*, per_key: int, per_deployment: int) -> None:
        for counter_id in counters:  # earlier tests' jobs of today
            table.delete_item(Key={"job_id": counter_id})
        monkeypatch.setattr(
            runtime,
            "settings",
            runtime.settings._replace(max_jobs_per_key_per_day=per_key, max_jobs_per_day=per_deployment),
        )

    set_caps.used = used
    set_caps.counters = counters
    yield set_caps
    for counter_id in counters:  # the next tests count from zero against the defaults
        table.delete_item(Key={"job_id": counter_id})


def submit_at_once(client: ApiClient, count: int) -> list:
    client = ApiClient(client.base_url, client.api_key)
    client.http = urllib3.PoolManager(maxsize=count, retries=False, timeout=urllib3.Timeout(connect=2, read=30))

    def one(n: int):
        return client.request("POST", "/v1/images", body={"prompt": f"fox {n}", "size": "256*256"})

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def assert_refused_until_midnight(answer, names: str) -> None:
    assert answer.status == 429, answer.data
    error = answer.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert names in error["message"]
    assert "renews at" in error["message"] and "T00:00:00Z" in error["message"]
    retry_after = int(answer.headers["Retry-After"])
    assert 1 <= retry_after <= 86400
    assert abs(retry_after - seconds_until_midnight(datetime.now(UTC))) <= 30


def test_a_keys_daily_cap_accepts_exactly_the_cap_of_concurrent_submits(stack, api, emulator, caps):
    # GIVEN a key's cap of 5 jobs a day, one of them taken with an Idempotency-Key
    caps(per_key=CAP, per_deployment=10000)
    first = api.request("POST", "/v1/images", body={"prompt": "fox 0"}, headers={"Idempotency-Key": "caps-0"})
    assert first.status == 202, first.data

    # WHEN 12 more arrive at once
    answers = submit_at_once(api, SUBMITS)

    # THEN exactly 4 more are accepted, the rest are refused until midnight, and the upstream made 5 tasks
    statuses = Counter(answer.status for answer in answers)
    assert statuses == {202: CAP - 1, 429: SUBMITS - (CAP - 1)}, [a.data for a in answers if a.status not in (202, 429)]
    for answer in answers:
        if answer.status == 429:
            assert_refused_until_midnight(answer, "this API key's daily cap of 5 jobs")
    assert emulator.calls["submit"] == CAP
    assert caps.used(caps.counters[0]) == CAP
    assert caps.used(caps.counters[2]) == CAP

    # AND a replay of the first job still gets it, counting nothing and paying for nothing
    replay = api.request("POST", "/v1/images", body={"prompt": "fox 0"}, headers={"Idempotency-Key": "caps-0"})
    assert replay.status == 202, replay.data
    assert replay.json()["id"] == first.json()["id"]
    assert emulator.calls["submit"] == CAP
    assert caps.used(caps.counters[0]) == CAP

    # AND another key is not held to the first one's cap
    assert ApiClient(stack.api_url, OTHER_API_KEY).request("POST", "/v1/images", body={"prompt": "x"}).status == 202


def test_the_deployments_daily_cap_holds_every_key_and_gives_their_units_back(stack, api, emulator, caps):
    # GIVEN a deployment cap of 5 a day, the keys' own caps far above it, and 2 jobs of another key today
    caps(per_key=1000, per_deployment=CAP)
    other = ApiClient(stack.api_url, OTHER_API_KEY)
    for n in range(2):
        assert other.request("POST", "/v1/images", body={"prompt": f"owl {n}"}).status == 202

    # WHEN the first key submits 12 jobs at once (one key: the local stack runs its API handler on
    # threads that share Powertools' current event, which one Lambda container never does)
    answers = submit_at_once(api, SUBMITS)

    # THEN exactly the 3 the deployment has left are accepted, and the refused ones left no unit on the key
    assert Counter(answer.status for answer in answers) == {202: CAP - 2, 429: SUBMITS - (CAP - 2)}
    for answer in answers:
        if answer.status == 429:
            assert_refused_until_midnight(answer, "the deployment's daily cap of 5 jobs")
    assert emulator.calls["submit"] == CAP
    assert caps.used(caps.counters[2]) == CAP
    assert (caps.used(caps.counters[0]), caps.used(caps.counters[1])) == (CAP - 2, 2)
    assert other.request("POST", "/v1/images", body={"prompt": "owl 2"}).status == 429
