"""The rest of the v1 contract over real HTTP: Idempotency-Key, Prefer: wait, DELETE, the
listing with cursors, and the OpenAPI document."""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pytest

from local.novita_emulator import Fault
from local.openapi import DOCUMENT, render
from zimage.clock import epoch_seconds
from zimage.runtime import shared_runtime

from .conftest import LISTING_API_KEY, OTHER_API_KEY, ApiClient

# --- Idempotency-Key ------------------------------------------------------------------------------


def test_a_repeat_with_the_same_key_and_body_gets_the_same_job_without_a_second_task(api, emulator):
    body = {"prompt": "a fox", "size": "512*512"}
    headers = {"Idempotency-Key": f"order-{time.time_ns()}"}

    first = api.request("POST", "/v1/images", body=body, headers=headers)
    second = api.request("POST", "/v1/images", body=body, headers=headers)

    assert first.status == second.status == 202
    assert first.json()["id"] == second.json()["id"]
    assert emulator.calls["submit"] == 1


def test_the_same_key_with_another_body_is_a_409(api, emulator):
    headers = {"Idempotency-Key": f"order-{time.time_ns()}"}
    api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers)

    answer = api.request("POST", "/v1/images", body={"prompt": "a cat"}, headers=headers)

    assert answer.status == 409
    assert answer.json()["error"]["field"] == "Idempotency-Key"
    assert emulator.calls["submit"] == 1


def test_keys_are_scoped_per_api_key(stack, api, emulator):
    headers = {"Idempotency-Key": f"shared-{time.time_ns()}"}
    mine = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers)

    theirs = ApiClient(stack.api_url, OTHER_API_KEY).request(
        "POST", "/v1/images", body={"prompt": "a fox"}, headers=headers
    )

    assert theirs.status == 202
    assert theirs.json()["id"] != mine.json()["id"]
    assert emulator.calls["submit"] == 2


def test_a_repeat_while_the_first_is_in_flight_is_a_409(api, emulator):
    emulator.script("submit", Fault(delay=0.8, passthrough=True))  # under the 1 s upstream read timeout
    headers = {"Idempotency-Key": f"slow-{time.time_ns()}"}
    answers = []

    first = threading.Thread(
        target=lambda: answers.append(api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers))
    )
    first.start()
    time.sleep(0.3)
    second = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers)
    first.join()

    assert answers[0].status == 202
    assert second.status == 409
    assert "still being processed" in second.json()["error"]["message"]
    assert emulator.calls["submit"] == 1


def test_a_failed_first_attempt_can_be_retried_with_the_same_key(api, emulator):
    emulator.script("submit", Fault(status=503, body={"reason": "busy"}))
    headers = {"Idempotency-Key": f"retry-{time.time_ns()}"}

    failed = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers)
    retried = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers=headers)

    assert failed.status == 503
    assert retried.status == 202


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "é-accent"])
def test_a_malformed_idempotency_key_is_a_400(api, emulator, key):
    answer = api.request(
        "POST",
        "/v1/images",
        body={"prompt": "a fox"},
        headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")},
    )

    assert answer.status == 400
    assert answer.json()["error"]["field"] == "Idempotency-Key"
    assert emulator.calls["submit"] == 0


def test_without_a_key_each_post_is_a_new_job(api, emulator):
    first = api.submit()
    second = api.submit()

    assert first["id"] != second["id"]


# --- Prefer: wait -------------------------------------------------------------------------------


def test_prefer_wait_answers_200_with_the_finished_job(api, emulator):
    answer = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers={"Prefer": "wait=10"})

    assert answer.status == 200
    assert answer.headers["Preference-Applied"] == "wait=10"
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["image"]["url"]


def test_prefer_wait_answers_202_when_the_job_is_not_done_in_time(api, emulator):
    emulator.configure(run_seconds=6)

    started = time.monotonic()
    answer = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers={"Prefer": "wait=1"})

    assert answer.status == 202
    assert answer.headers["Preference-Applied"] == "wait=1"
    assert answer.json()["status"] in ("queued", "processing")
    assert time.monotonic() - started >= 0.9


def test_prefer_wait_works_on_get_and_is_capped_at_25(api, emulator):
    job = api.submit()

    answer = api.request("GET", f"/v1/images/{job['id']}", headers={"Prefer": "respond-async, wait=600"})

    assert answer.status == 200
    assert answer.headers["Preference-Applied"] == "wait=25"
    assert answer.json()["status"] == "succeeded"


@pytest.mark.parametrize("prefer", ["wait=0", "wait=soon", "handling=lenient"])
def test_a_preference_we_cannot_use_is_ignored(api, emulator, prefer):
    answer = api.request("POST", "/v1/images", body={"prompt": "a fox"}, headers={"Prefer": prefer})

    assert answer.status == 202
    assert "Preference-Applied" not in answer.headers


# --- DELETE -------------------------------------------------------------------------------------


def test_cancel_ends_the_workflow_and_the_job_stays_canceled(stack, api, emulator):
    emulator.configure(outcome="never", eta_override=2)
    job = api.submit()

    answer = api.request("DELETE", f"/v1/images/{job['id']}")

    assert answer.status == 200
    assert answer.json()["status"] == "canceled"
    assert answer.json()["completed_at"]
    execution = stack.finished_execution(job["id"])
    if shared_runtime().settings.workflow_type == "STANDARD":
        assert execution["status"] == "ABORTED"  # stopped by the DELETE
    else:  # Express executions cannot be stopped: the next poll sees the cancel and ends the run
        names = [
            e["stateEnteredEventDetails"]["name"]
            for e in stack.history_for(job["id"])
            if "stateEnteredEventDetails" in e
        ]
        assert (execution["status"], names[-1]) == ("SUCCEEDED", "JobCanceled")
    assert api.get(job["id"])["status"] == "canceled"


def test_cancel_of_an_ended_job_changes_nothing(api, emulator):
    job = api.wait(api.submit()["id"])

    answer = api.request("DELETE", f"/v1/images/{job['id']}")

    assert answer.status == 200
    assert answer.json()["status"] == "succeeded"
    assert answer.json()["completed_at"] == job["completed_at"]


def test_cancel_of_another_keys_job_is_404(stack, api, emulator):
    emulator.configure(outcome="never", eta_override=2)
    job = api.submit()

    answer = ApiClient(stack.api_url, OTHER_API_KEY).request("DELETE", f"/v1/images/{job['id']}")

    assert answer.status == 404
    assert api.get(job["id"])["status"] in ("queued", "processing")
    api.request("DELETE", f"/v1/images/{job['id']}")


# --- The job object -------------------------------------------------------------------------------


def upstream_seed(stack, job_id: str) -> int:
    """The seed the upstream (the emulator) really drew for the job's task."""
    item = stack.client("dynamodb").get_item(TableName=stack.table, Key={"job_id": {"S": job_id}})["Item"]
    return stack.emulator.tasks[item["task_id"]["S"]].seed


@pytest.mark.parametrize(("fields", "asked"), [({"seed": -1}, -1), ({}, -1), ({"seed": 1234567}, 1234567)])
def test_the_finished_job_shows_the_seed_the_upstream_used(stack, api, emulator, fields, asked):
    # GIVEN a job submitted with a random seed (-1, or none), or a chosen one
    accepted = api.submit(**fields)

    # WHEN it has ended
    job = api.wait(accepted["id"])

    # THEN it shows the seed the upstream drew, not the -1 that asked for one
    assert accepted["seed"] == asked
    assert job["status"] == "succeeded", job
    used = upstream_seed(stack, job["id"])
    assert job["seed"] == used != -1
    if asked != -1:
        assert used == asked


def signed_until(url: str) -> float:
    """When a SigV4 presigned URL stops working: its signing time plus its lifetime."""
    query = parse_qs(urlsplit(url).query)
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return signed.timestamp() + int(query["X-Amz-Expires"][0])


def read_the_job(api, job_id: str, how: str) -> dict:
    if how == "GET":
        return api.get(job_id)
    if how == "GET with Prefer: wait":
        return api.request("GET", f"/v1/images/{job_id}", headers={"Prefer": "wait=2"}).json()
    if how == "DELETE of the ended job":
        return api.request("DELETE", f"/v1/images/{job_id}").json()
    page = api.request("GET", "/v1/images?status=succeeded&limit=5").json()
    return next(item for item in page["items"] if item["id"] == job_id)


@pytest.mark.parametrize("how", ["GET", "GET with Prefer: wait", "list", "DELETE of the ended job"])
def test_image_expires_at_is_in_the_future_at_every_read(api, emulator, how):
    # GIVEN a succeeded job
    job_id = api.wait(api.submit()["id"])["id"]
    lifetime = shared_runtime().settings.presigned_url_seconds
    seen = []

    for _ in range(2):
        # WHEN it is read
        image = read_the_job(api, job_id, how)["image"]
        now = time.time()

        # THEN its URL is made at this read: it expires a whole lifetime from now, when the URL says
        expires = epoch_seconds(image["expires_at"])
        assert now + lifetime - 5 < expires <= now + lifetime + 1, (image["expires_at"], now)
        assert abs(expires - signed_until(image["url"])) <= 1.5
        seen.append(expires)
        time.sleep(1.1)

    assert seen[1] > seen[0]


@pytest.mark.parametrize("how", ["GET", "list"])
def test_an_image_past_its_retention_is_shown_without_a_url(stack, api, emulator, how):
    # GIVEN a succeeded job whose image the bucket's lifecycle may have deleted by now
    job = api.wait(api.submit()["id"])
    assert epoch_seconds(job["image"]["kept_until"]) > time.time() + 6 * 86400  # ImageRetentionDays 7
    stack.client("dynamodb").update_item(
        TableName=stack.table,
        Key={"job_id": {"S": job["id"]}},
        UpdateExpression="SET image.kept_until = :past",
        ExpressionAttributeValues={":past": {"S": "2026-01-01T00:00:00.000Z"}},
    )

    # WHEN it is read
    image = read_the_job(api, job["id"], how)["image"]

    # THEN it is still succeeded with its image's facts, but hands out no link that would fail
    assert "url" not in image and "expires_at" not in image
    assert image["kept_until"] == "2026-01-01T00:00:00.000Z"
    assert image["sha256"] == job["image"]["sha256"]


# --- GET /v1/images -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def listing(stack):
    """Five jobs of the listing key, oldest first, one of them canceled."""
    client = ApiClient(stack.api_url, LISTING_API_KEY)
    made = [client.submit(prompt=f"fox {n}") for n in range(5)]
    for job in made:
        client.wait(job["id"])
    stack.emulator.configure(outcome="never", eta_override=2)
    canceled = client.submit(prompt="fox to cancel")
    client.request("DELETE", f"/v1/images/{canceled['id']}")
    stack.emulator.reset()
    return client, [job["id"] for job in made], canceled["id"]


def test_the_list_is_newest_first_and_pages_with_a_cursor(listing):
    client, made, canceled = listing
    seen, cursor, pages = [], None, 0
    while True:
        answer = client.request("GET", "/v1/images?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert answer.status == 200, answer.data
        page = answer.json()
        pages += 1
        seen += [job["id"] for job in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break

    assert seen == [canceled, *reversed(made)]
    assert pages == 3


def test_the_list_holds_20_jobs_when_no_limit_is_given(api, emulator):
    # GIVEN 21 jobs, the newest of this key
    made = [api.submit(prompt=f"fox {n}")["id"] for n in range(21)]

    # WHEN the list is read without a limit
    page = api.request("GET", "/v1/images").json()

    # THEN it holds the newest 20, and the cursor leads to the 21st
    assert [job["id"] for job in page["items"]] == list(reversed(made))[:20]
    rest = api.request("GET", f"/v1/images?limit=1&cursor={page['next_cursor']}").json()
    assert [job["id"] for job in rest["items"]] == [made[0]]


def test_the_list_filters_on_status(listing):
    client, _made, canceled = listing

    page = client.request("GET", "/v1/images?status=canceled").json()

    assert [job["id"] for job in page["items"]] == [canceled]
    assert "next_cursor" not in page


def test_the_list_shows_only_the_callers_jobs(stack, listing):
    _client, made, canceled = listing

    other = ApiClient(stack.api_url, OTHER_API_KEY).request("GET", "/v1/images?limit=100").json()

    assert not {job["id"] for job in other["items"]} & {*made, canceled}


def test_succeeded_jobs_in_the_list_carry_fresh_urls(listing):
    client, _made, _canceled = listing

    page = client.request("GET", "/v1/images?status=succeeded&limit=1").json()

    assert page["items"][0]["image"]["url"]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("limit=0", "limit", "limit must be an integer from 1 to 100, got '0'"),
        ("limit=101", "limit", "got '101'"),
        ("limit=ten", "limit", "got 'ten'"),
        ("limit=5.0", "limit", "got '5.0'"),
        ("limit=", "limit", "got ''"),
        ("limit=2&limit=3", "limit", "got '2,3'"),
        ("status=done", "status", "status must be one of queued, processing, succeeded, failed, canceled, got 'done'"),
        ("status=SUCCEEDED", "status", "got 'SUCCEEDED'"),
        ("cursor=not-a-cursor", "cursor", "not one this API gave out"),
        (
            "cursor="
            + base64.urlsafe_b64encode(json.dumps(["2026-01-01T00:00:00.000Z", "img_../../x"]).encode()).decode(),
            "cursor",
            "not one this API gave out",
        ),
        ("cursor=" + base64.urlsafe_b64encode(b'{"job_id": {"S": "x"}}').decode(), "cursor", "not one this API"),
        ("cursor=%27%20OR%201%3D1", "cursor", "not one this API gave out"),
    ],
)
def test_bad_list_parameters_are_400s_that_name_them(listing, query, field, message):
    client, _, _ = listing

    answer = client.request("GET", f"/v1/images?{query}")

    assert answer.status == 400, answer.data
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_request", field)
    assert message in error["message"]


# --- OpenAPI ------------------------------------------------------------------------------------


def test_the_openapi_document_is_served_without_a_key_and_matches_the_committed_one(stack):
    answer = ApiClient(stack.api_url, api_key=None).request("GET", "/v1/openapi.json")

    assert answer.status == 200
    served = answer.json()
    assert render(served) == DOCUMENT.read_text(), "openapi.json is stale: run `python -m local openapi`"
    assert set(served["paths"]) == {"/v1/images", "/v1/images/{job_id}", "/v1/health", "/v1/openapi.json"}
    # The document lists itself, open like the route: no key (template: ApiKeyRequired false).
    assert served["paths"]["/v1/openapi.json"]["get"]["security"] == []
