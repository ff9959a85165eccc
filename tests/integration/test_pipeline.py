"""The whole pipeline through the real state machine file: HTTP API -> submit -> Step Functions
poll loop -> S3 -> presigned URL, with the Novita emulator playing each upstream outcome."""

from __future__ import annotations

import hashlib
import io

import urllib3
from PIL import Image

from local.novita_emulator import Fault
from zimage.runtime import shared_runtime


def download(url: str) -> urllib3.BaseHTTPResponse:
    return urllib3.request("GET", url, timeout=10, retries=False)


def state_names(stack, job_id: str) -> list[str]:
    stack.finished_execution(job_id)
    return [
        event["stateEnteredEventDetails"]["name"]
        for event in stack.history_for(job_id)
        if "stateEnteredEventDetails" in event
    ]


def test_a_job_ends_with_the_requested_image_behind_a_presigned_url(stack, api, emulator):
    # GIVEN an upstream that takes under a second
    # WHEN a client submits a prompt
    submitted = api.submit(size="640*384", seed=7)
    job = api.wait(submitted["id"])

    # THEN the job succeeded and its URL downloads a real JPEG of that size, as recorded
    assert submitted["status"] == "queued"
    assert job["status"] == "succeeded", job
    image = job["image"]
    answer = download(image["url"])
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "image/jpeg"
    picture = Image.open(io.BytesIO(answer.data))
    assert picture.format == "JPEG"
    assert picture.size == (640, 384) == (image["width"], image["height"])
    assert image["bytes"] == len(answer.data)
    assert image["sha256"] == hashlib.sha256(answer.data).hexdigest()
    assert job["seed"] == 7
    assert job["completed_at"] >= job["created_at"]
    # ... and the workflow announced it, took it out of the sweeper's index, and ended in its
    # success state after one poll
    execution = stack.finished_execution(job["id"])
    assert execution["status"] == "SUCCEEDED"
    assert state_names(stack, job["id"]) == [
        "Poll",
        "RouteOnStatus",
        "AnnounceSucceeded",
        "MarkAnnounced",
    ]
    assert (
        "active_shard" not in stack.resource("dynamodb").Table(stack.table).get_item(Key={"job_id": job["id"]})["Item"]
    )
    assert emulator.calls["submit"] == 1


def test_the_execution_output_carries_the_image_facts_not_its_bytes(stack, api, emulator):
    job = api.wait(api.submit(size="256*256")["id"])

    output = __import__("json").loads(stack.finished_execution(job["id"])["output"])

    assert output["status"] == "succeeded"
    assert output["image"]["bucket"] == stack.bucket
    assert output["image"]["key"] == f"images/{job['id']}"
    assert output["image"]["width"] == 256
    assert download(output["image"]["url"]).status == 200
    assert len(str(output)) < 4096  # ids and facts only: far from the 256 KB payload limit


def test_every_read_gets_a_fresh_presigned_url(api, emulator):
    job = api.wait(api.submit()["id"])

    again = api.get(job["id"])

    assert again["image"]["sha256"] == job["image"]["sha256"]
    assert again["image"]["expires_at"] >= job["image"]["expires_at"]
    assert download(again["image"]["url"]).status == 200


def test_a_long_task_is_seen_processing_with_progress_before_it_ends(api, emulator):
    emulator.configure(queue_seconds=0, run_seconds=3.0)

    submitted = api.submit()
    seen = set()
    while True:
        job = api.get(submitted["id"])
        seen.add(job["status"])
        if job["status"] in ("succeeded", "failed"):
            break
        if job["status"] == "processing":
            assert 0 <= job.get("progress", 0) <= 100

    assert "processing" in seen
    assert job["status"] == "succeeded"


def test_png_and_webp_images_are_stored_with_their_own_type(api, emulator):
    for image_type, content_type, extension in (("png", "image/png", "png"), ("webp", "image/webp", "webp")):
        emulator.configure(image_type=image_type)
        job = api.wait(api.submit(size="300*500")["id"])
        assert job["status"] == "succeeded", job
        assert job["image"]["content_type"] == content_type
        assert download(job["image"]["url"]).headers["Content-Type"] == content_type
        saved_as = download(job["image"]["download_url"]).headers["Content-Disposition"]
        assert saved_as == f'attachment; filename="{job["id"]}.{extension}"'
        assert Image.open(io.BytesIO(download(job["image"]["url"]).data)).size == (300, 500)


def test_base64_output_is_decoded_and_stored(stack, api, emulator, monkeypatch):
    # GIVEN a deployment that asks the upstream for base64 data instead of a URL
    runtime = shared_runtime()
    monkeypatch.setattr(runtime, "settings", runtime.settings._replace(base64_output=True))

    job = api.wait(api.submit(size="512*512")["id"])

    assert job["status"] == "succeeded", job
    assert emulator.calls["image"] == 0  # nothing was downloaded: the data came inline
    assert Image.open(io.BytesIO(download(job["image"]["url"]).data)).size == (512, 512)


def test_an_upstream_failure_fails_the_job_with_its_reason(stack, api, emulator):
    emulator.configure(outcome="fail", fail_reason="prompt rejected by the safety filter")

    job = api.wait(api.submit()["id"])

    assert job["status"] == "failed"
    assert job["error"]["code"] == "upstream_failed"
    assert "prompt rejected by the safety filter" in job["error"]["message"]
    assert "image" not in job
    execution = stack.finished_execution(job["id"])
    assert execution["status"] == "FAILED"
    assert execution["error"] == "upstream_failed"


def test_a_task_that_never_ends_fails_at_the_deadline(stack, api, emulator):
    # GIVEN a task the upstream says needs 30 more seconds, past the 8 s deadline
    emulator.configure(outcome="never", eta_override=30)

    job = api.wait(api.submit()["id"], timeout=30)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert stack.finished_execution(job["id"])["status"] == "FAILED"
    # the waits followed the upstream's eta instead of a fixed beat: few polls for 8 s
    assert state_names(stack, job["id"]).count("Poll") <= 3


def test_the_poll_cap_ends_a_job_that_keeps_saying_almost_done(stack, api, emulator):
    # GIVEN a task that always reports one second left and never ends
    emulator.configure(outcome="never", eta_override=1)

    job = api.wait(api.submit()["id"], timeout=30)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "timeout"
    assert "number of polls" in job["error"]["message"]
    names = state_names(stack, job["id"])
    assert names.count("Poll") == 3
    assert names[-6:] == [
        "PollLimitReached",
        "RecordFailure",
        "RouteOnStatus",
        "AnnounceFailed",
        "MarkFailedAnnounced",
        "JobFailed",
    ]


def test_a_broken_image_url_is_retried_then_fails_the_job(stack, api, emulator):
    # GIVEN an upstream whose image links answer 404
    emulator.configure(image_status=404)

    job = api.wait(api.submit()["id"], timeout=30)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "image_unavailable"
    assert "404" in job["error"]["message"]
    # the whole poll step ran again (fresh task result, fresh URL) before giving up
    assert emulator.calls["result"] >= 3
    assert stack.finished_execution(job["id"])["status"] == "FAILED"


def test_an_image_link_that_fails_once_recovers(api, emulator):
    emulator.script("image", Fault(status=403, raw=b"<Error>expired</Error>"))

    job = api.wait(api.submit()["id"], timeout=30)

    assert job["status"] == "succeeded", job
    assert emulator.calls["image"] == 2


def test_an_image_of_the_wrong_size_is_refused(api, emulator, stack):
    emulator.configure(image_variant="wrong_size")

    job = api.wait(api.submit(size="512*512")["id"])

    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_image"
    assert "256*256" in job["error"]["message"] and "512*512" in job["error"]["message"]
    objects = stack.client("s3").list_objects_v2(Bucket=stack.bucket, Prefix=f"images/{job['id']}")
    assert objects.get("KeyCount", 0) == 0  # nothing half-written


def test_bytes_that_are_not_an_image_are_refused(api, emulator):
    emulator.configure(image_variant="not_image")

    job = api.wait(api.submit()["id"])

    assert job["status"] == "failed"
    assert job["error"]["code"] == "invalid_image"


def test_upstream_poll_errors_are_ridden_out(api, emulator):
    # GIVEN a task-result endpoint that fails twice before answering
    emulator.script("result", *[Fault(status=503, body={"code": 503, "reason": "", "message": "busy"})] * 4)

    job = api.wait(api.submit()["id"], timeout=30)

    assert job["status"] == "succeeded", job


def test_a_handled_failure_leaves_no_interpreter_dump_in_the_log(stack, api, emulator, caplog):
    # GIVEN a job the upstream fails, which the workflow ends through its failure path
    emulator.configure(outcome="fail")

    with caplog.at_level("ERROR"):
        job = api.wait(api.submit()["id"])

    # THEN the local stack's log holds no per-state dump of that handled failure
    assert job["status"] == "failed"
    assert stack.finished_execution(job["id"])["status"] == "FAILED"
    dumps = [record for record in caplog.records if "FailureEventException" in record.getMessage()]
    assert dumps == []
