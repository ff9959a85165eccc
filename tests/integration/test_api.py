"""The HTTP contract over real HTTP: access, validation, the error model, upstream refusals.
A rejected request never reaches the upstream and never leaves a job behind."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from local.novita_emulator import Fault

from .conftest import OTHER_API_KEY, ApiClient


def job_count(stack) -> int:
    # Jobs only: the table also holds the daily caps' counters (zimage.jobs.quota), which a
    # refused submit may leave at zero.
    return stack.client("dynamodb").scan(
        TableName=stack.table,
        Select="COUNT",
        FilterExpression="begins_with(job_id, :job)",
        ExpressionAttributeValues={":job": {"S": "img_"}},
    )["Count"]


@pytest.fixture
def nothing_left_behind(stack, emulator):
    """Asserts, after the test, that the upstream was never called and no job was recorded."""
    before = job_count(stack)
    yield
    assert emulator.calls["submit"] == 0
    assert job_count(stack) == before


# --- access -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_without_a_valid_key_the_gateway_answers_forbidden(stack, key, nothing_left_behind):
    answer = ApiClient(stack.api_url, api_key=key).request("POST", "/v1/images", body={"prompt": "x"})

    assert answer.status == 403
    assert answer.json() == {"message": "Forbidden"}


@pytest.mark.parametrize(("method", "path"), [("PUT", "/v1/images"), ("GET", "/v2/images"), ("POST", "/")])
def test_a_route_the_api_does_not_have_is_404_naming_the_routes_it_has(api, method, path, nothing_left_behind):
    answer = api.request(method, path)

    assert answer.status == 404
    error = answer.json()["error"]
    assert error["code"] == "not_found"
    assert "POST /v1/images" in error["message"] and "GET /v1/images/{job_id}" in error["message"]


@pytest.mark.parametrize("path", ["/v1/images%0A", "/v1/health%0A"])
def test_a_path_holding_a_control_character_names_no_resource(api, path, nothing_left_behind):
    """A route pattern's `$` also matches before a final newline: the list must not answer."""
    answer = api.request("GET", path)

    assert answer.status == 404, answer.json()
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("key", [None, "not-a-key"])
def test_an_unknown_route_without_a_valid_key_is_404_too(stack, key, nothing_left_behind):
    """API Gateway matches the route before it checks the key."""
    answer = ApiClient(stack.api_url, api_key=key).request("GET", "/v1/nothing-here")

    assert answer.status == 404
    assert answer.json()["error"]["code"] == "not_found"


def test_headers_over_api_gateways_quota_are_431_in_the_error_model(api, nothing_left_behind):
    answer = api.request("POST", "/v1/images", body={"prompt": "x"}, headers={"X-Padding": "x" * 11_000})

    assert answer.status == 431
    assert set(answer.json()) == {"error"}
    assert answer.json()["error"]["code"] == "request_refused"
    assert "10240 bytes" in answer.json()["error"]["message"]


def test_a_header_line_the_http_layer_refuses_is_answered_in_the_error_model_too(api, nothing_left_behind):
    """A single header line over 64 KiB never reaches the route matching: http.server refuses it."""
    answer = api.request("POST", "/v1/images", body={"prompt": "x"}, headers={"X-Padding": "x" * 70_000})

    assert answer.status == 431
    assert answer.headers["Content-Type"] == "application/json"
    assert answer.json()["error"]["code"] == "request_refused"


def test_another_keys_job_reads_like_an_unknown_one(stack, api):
    job = api.wait(api.submit()["id"])

    other = ApiClient(stack.api_url, api_key=OTHER_API_KEY).request("GET", f"/v1/images/{job['id']}")
    unknown = api.request("GET", "/v1/images/img_00000000000000000000000000")

    assert other.status == unknown.status == 404
    assert other.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"


def test_concurrent_requests_with_different_keys_each_act_as_their_own_key(stack, api):
    # GIVEN two keys, each with a job of its own
    clients = [api, ApiClient(stack.api_url, api_key=OTHER_API_KEY)]
    jobs = [client.submit()["id"] for client in clients]

    # WHEN both read their own job many times at once
    def read(turn: int) -> int:
        client, job_id = clients[turn % 2], jobs[turn % 2]
        return client.request("GET", f"/v1/images/{job_id}").status

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(read, range(160)))

    # THEN each was answered as its own key's, as on Lambda, where no two share an environment
    assert statuses == [200] * 160


@pytest.mark.parametrize("job_id", ["nope", "img_..%2F..%2Fetc", "img_' OR 1=1 --", "a" * 300])
def test_ids_that_cannot_exist_are_404_without_a_lookup(api, job_id):
    answer = api.request("GET", f"/v1/images/{job_id}")

    assert answer.status in (403, 404)  # a path with an encoded slash has no route at all
    if answer.status == 404:
        assert answer.json()["error"]["code"] == "not_found"


# --- validation ---------------------------------------------------------------------------------

BAD_BODIES = [
    ({"size": "1024*1024"}, "prompt", "prompt is required"),
    ({"prompt": ""}, "prompt", "must not be empty"),
    ({"prompt": "   \n\t "}, "prompt", "must not be empty"),
    ({"prompt": "x" * 4001}, "prompt", "at most 4000 characters, got 4001"),
    ({"prompt": "a\x00b"}, "prompt", "control characters"),
    ({"prompt": 42}, "prompt", "must be a string"),
    ({"prompt": {"text": "fox"}}, "prompt", "must be a string"),
    ({"prompt": "fox", "size": "1024x1024"}, "size", "got 1024x1024"),
    ({"prompt": "fox", "size": "2048*512"}, "size", "size must be W*H with each side 256..1536, got 2048*512"),
    ({"prompt": "fox", "size": "0*0"}, "size", "256..1536"),
    ({"prompt": "fox", "size": "1e3*512"}, "size", "256..1536"),
    ({"prompt": "fox", "size": "-512*512"}, "size", "256..1536"),
    ({"prompt": "fox", "size": 1024}, "size", "must be a string"),
    ({"prompt": "fox", "seed": 7.5}, "seed", "integer"),
    ({"prompt": "fox", "seed": True}, "seed", "got a boolean"),
    ({"prompt": "fox", "seed": "7"}, "seed", "integer"),
    ({"prompt": "fox", "seed": -2}, "seed", "got -2"),
    ({"prompt": "fox", "seed": 2**31}, "seed", "got 2147483648"),
    ({"prompt": "fox", "colour": "red"}, "colour", "unknown field 'colour'"),
    ({"prompt": "fox", "metadata": {f"k{n}": "v" for n in range(17)}}, "metadata", "at most 16 keys"),
    ({"prompt": "fox", "metadata": {"a b": "v"}}, "metadata", "keys must be 1..64 characters"),
    ({"prompt": "fox", "metadata": {"k": 1}}, "metadata", "values must be strings"),
    ({"prompt": "fox", "metadata": {"k": "v" * 513}}, "metadata", "at most 512 characters"),
]


@pytest.mark.parametrize(("body", "field", "message"), BAD_BODIES)
def test_a_bad_field_is_a_400_that_names_it(api, body, field, message, nothing_left_behind):
    answer = api.request("POST", "/v1/images", body=body)

    assert answer.status == 400, answer.data
    error = answer.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == field
    assert message in error["message"]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'"a fox"', "JSON object"),
        (b"", "JSON object"),
        (b"\xff\xfe{}", "UTF-8"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(api, raw, message, nothing_left_behind):
    answer = api.request("POST", "/v1/images", raw=raw)

    assert answer.status == 400, answer.data
    assert message in answer.json()["error"]["message"]


def test_a_body_over_64_kib_is_a_413(api, nothing_left_behind):
    answer = api.request("POST", "/v1/images", raw=json.dumps({"prompt": "x" * 70_000}).encode())

    assert answer.status == 413
    assert answer.json()["error"]["code"] == "payload_too_large"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_a_body_that_is_not_json_by_type_is_a_415(api, content_type, nothing_left_behind):
    answer = api.request("POST", "/v1/images", body={"prompt": "fox"}, headers={"Content-Type": content_type})

    assert answer.status == 415
    assert answer.json()["error"]["code"] == "unsupported_media_type"


def test_the_accepted_job_is_recorded_with_defaults_and_a_location(api):
    answer = api.request("POST", "/v1/images", body={"prompt": "  a fox  "})

    assert answer.status == 202
    job = answer.json()
    assert answer.headers["Location"] == f"/v1/images/{job['id']}" == job["links"]["self"]
    assert job["prompt"] == "a fox"
    assert job["size"] == "1024*1024"
    assert job["seed"] == -1
    assert job["status"] == "queued"


# --- upstream refusals at submit --------------------------------------------------------------


def test_upstream_rate_limit_is_retried_then_passed_on_with_retry_after(stack, api, emulator):
    before = job_count(stack)
    limited = {"status": 429, "headers": {"Retry-After": "1"}, "body": {"code": 429, "reason": "RATE_LIMIT_EXCEEDED"}}
    emulator.script("submit", limited, limited, limited)

    answer = api.request("POST", "/v1/images", body={"prompt": "fox"})

    assert answer.status == 429
    assert answer.headers["Retry-After"] == "1"
    assert answer.json()["error"]["code"] == "upstream_rate_limited"
    assert emulator.calls["submit"] == 3  # a refused submit made no task, so it is retried
    assert job_count(stack) == before


def test_a_rate_limit_that_clears_gives_an_accepted_job(api, emulator):
    emulator.script("submit", Fault(status=429, headers={"Retry-After": "0"}, body={"reason": "RATE_LIMIT_EXCEEDED"}))

    answer = api.request("POST", "/v1/images", body={"prompt": "fox"})

    assert answer.status == 202
    assert emulator.calls["submit"] == 2


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (Fault(status=503, body={"code": 503, "reason": "SERVICE_UNAVAILABLE"}), 503, "upstream_unavailable"),
        (Fault(status=500, body={"code": 500, "reason": "CREATE_TASK_FAILED"}), 503, "upstream_unavailable"),
        (Fault(drop=True), 504, "upstream_timeout"),
        (Fault(status=200, raw=b"<html>gateway</html>"), 503, "upstream_unavailable"),
        (Fault(status=200, body={"no_task_id": True}), 503, "upstream_unavailable"),
        (Fault(status=403, body={"code": 403, "reason": "INVALID_API_KEY"}), 503, "upstream_key_refused"),
        (Fault(status=400, body={"code": 400, "reason": "BILLING_BALANCE_NOT_ENOUGH"}), 503, "upstream_balance_empty"),
        (Fault(status=400, body={"code": 400, "reason": "INVALID_REQUEST_BODY"}), 502, "upstream_error"),
    ],
)
def test_an_upstream_failure_at_submit_is_answered_once_and_leaves_no_job(stack, api, emulator, fault, status, code):
    # A submit that may have reached the upstream is never repeated: it could start a second paid task.
    before = job_count(stack)
    emulator.script("submit", fault)

    answer = api.request("POST", "/v1/images", body={"prompt": "fox"})

    assert answer.status == status, answer.data
    assert answer.json()["error"]["code"] == code
    assert emulator.calls["submit"] == 1
    assert job_count(stack) == before


def test_a_prompt_the_upstream_calls_illegal_is_the_callers_400(api, emulator):
    emulator.script("submit", Fault(status=400, body={"code": 400, "reason": "ILLEGAL_PROMPT", "message": "nsfw"}))

    answer = api.request("POST", "/v1/images", body={"prompt": "fox"})

    assert answer.status == 400
    assert answer.json()["error"]["field"] == "prompt"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"min_wait_seconds": 40, "max_wait_seconds": 30}, "MinWaitSeconds (40) is above MaxWaitSeconds (30)"),
        ({"execution_timeout_seconds": 60, "poll_turn_seconds": 60}, "leaves no time to poll"),
    ],
)
def test_contradicting_settings_refuse_a_submit_before_the_upstream(
    api, monkeypatch, changes, named, nothing_left_behind
):
    # GIVEN a deployment whose parameters contradict each other where CloudFormation could not see it
    from zimage.runtime import shared_runtime

    runtime = shared_runtime()
    monkeypatch.setattr(runtime, "settings", runtime.settings._replace(**changes))

    # WHEN a client submits
    answer = api.request("POST", "/v1/images", body={"prompt": "fox"})

    # THEN it is told what is wrong, and nothing is started or paid for
    assert answer.status == 503, answer.data
    error = answer.json()["error"]
    assert error["code"] == "inconsistent_settings"
    assert named in error["message"]
