"""Every task-result variant the documentation allows reads without a crash."""

from __future__ import annotations

import pytest

from zimage.upstream.errors import UpstreamRateLimited, UpstreamRejected, UpstreamUnavailable
from zimage.upstream.novita import TaskStatus, error_from_response, parse_retry_after, parse_task_result, to_number

DOCUMENTED = {
    "extra": {
        "seed": "158881667",
        "enable_nsfw_detection": False,
        "debug_info": {"request_info": "", "submit_time_ms": "", "execute_time_ms": "", "complete_time_ms": ""},
    },
    "task": {
        "task_id": "830d9c90",
        "status": "TASK_STATUS_SUCCEED",
        "reason": "",
        "task_type": "TXT_TO_IMG",
        "eta": 0,
        "progress_percent": 0,
    },
    "images": [
        {
            "image_url": "https://cdn.example/x.jpeg?X-Amz-Expires=3600",
            "image_url_ttl": 3600,
            "image_type": "jpeg",
            "nsfw_detection_result": {},
        }
    ],
    "videos": [],
    "audios": [],
}


def test_the_documented_example_reads_fully():
    result = parse_task_result(DOCUMENTED)

    assert result.status is TaskStatus.SUCCEED
    assert result.seed == 158881667
    assert result.images[0].image_type == "jpeg"
    assert result.images[0].url_ttl_seconds == 3600
    assert result.eta_seconds == 0


@pytest.mark.parametrize(("ttl", "expected"), [(3600, 3600), ("3600", 3600), ("0", None), (0, None), ("", None)])
def test_image_url_ttl_in_every_observed_form(ttl, expected):
    body = {**DOCUMENTED, "images": [{**DOCUMENTED["images"][0], "image_url_ttl": ttl}]}

    assert parse_task_result(body).images[0].url_ttl_seconds == expected


@pytest.mark.parametrize("status", ["TASK_STATUS_UNKNOWN", "TASK_STATUS_PAUSED", None, 3])
def test_a_status_we_do_not_know_is_not_final(status):
    result = parse_task_result({"task": {"status": status}})

    assert result.status is TaskStatus.UNKNOWN
    assert not result.status.is_final


@pytest.mark.parametrize(
    "body", [{}, {"task": None}, {"task": "x", "images": None, "extra": []}, {"images": 5}, {"images": "x"}]
)
def test_missing_top_level_fields_read_as_unknown(body):
    result = parse_task_result(body)

    assert result.status is TaskStatus.UNKNOWN
    assert result.images == ()
    assert result.seed is None


def test_images_without_a_url_are_skipped():
    body = {"task": {"status": "TASK_STATUS_SUCCEED"}, "images": [{"image_url": ""}, "junk", {"image_type": "png"}]}

    assert parse_task_result(body).images == ()


@pytest.mark.parametrize("body", [[], "text", None, 5])
def test_a_body_that_is_not_an_object_is_an_upstream_fault(body):
    with pytest.raises(UpstreamUnavailable):
        parse_task_result(body)


def test_eta_and_progress_may_be_strings():
    result = parse_task_result({"task": {"status": "TASK_STATUS_PROCESSING", "eta": "4", "progress_percent": "40"}})

    assert (result.eta_seconds, result.progress_percent) == (4.0, 40.0)


@pytest.mark.parametrize("value", [None, "", "abc", True, float("nan"), "inf", {}])
def test_garbage_numbers_read_as_none(value):
    assert to_number(value) is None


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (429, b'{"code":429,"reason":"RATE_LIMIT_EXCEEDED"}', UpstreamRateLimited),
        (400, b'{"code":400,"reason":"INVALID_REQUEST_BODY"}', UpstreamRejected),
        (401, b'{"code":401,"reason":"INVALID_API_KEY"}', UpstreamRejected),
        (404, b'{"code":404,"reason":"TASK_NOT_FOUND"}', UpstreamRejected),
        (500, b'{"code":500,"reason":"GET_RESULT_FAILED"}', UpstreamUnavailable),
        (500, b'{"code":500,"reason":"BILLING_FAILED"}', UpstreamRejected),
        (502, b"<html>bad gateway</html>", UpstreamUnavailable),
        (504, b"", UpstreamUnavailable),
        (418, b"teapot", UpstreamRejected),
    ],
)
def test_error_answers_map_to_what_can_be_done_about_them(status, body, kind):
    error = error_from_response(status, body)

    assert type(error) is kind
    assert error.status == status


def test_the_error_message_carries_the_reason_and_text():
    error = error_from_response(403, b'{"code":403,"reason":"INVALID_API_KEY","message":"invalid api-key"}')

    assert error.reason == "INVALID_API_KEY"
    assert "INVALID_API_KEY: invalid api-key" in error.message


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), ("0.5", 0.5), (None, None), ("-1", None), ("Wed, 21 Oct", None)]
)
def test_retry_after(value, seconds):
    assert parse_retry_after(value) == seconds
