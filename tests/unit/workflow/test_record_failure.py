from __future__ import annotations

import json

from zimage.workflow.record_failure import failure_from_catch


def lambda_cause(error_type: str, message: str) -> str:
    return json.dumps({"errorType": error_type, "errorMessage": message, "stackTrace": ["secret frames"]})


def test_a_broken_image_link_says_what_the_link_answered():
    code, message = failure_from_catch(
        {"Error": "ImageUnavailable", "Cause": lambda_cause("ImageUnavailable", "the image URL answered HTTP 404")}
    )

    assert code == "image_unavailable"
    assert message.endswith("the image URL answered HTTP 404")


def test_the_workflow_timeout_and_poll_cap_are_timeouts():
    assert failure_from_catch({"Error": "States.Timeout", "Cause": ""})[0] == "timeout"
    assert failure_from_catch({"Error": "PollLimitReached", "Cause": "x"})[0] == "timeout"


def test_an_unexpected_error_tells_the_caller_nothing_internal():
    code, message = failure_from_catch({"Error": "KeyError", "Cause": lambda_cause("KeyError", "'image' in table x")})

    assert code == "internal_error"
    assert "table" not in message and "KeyError" not in message


def test_a_missing_or_garbled_catch_still_gives_an_error():
    assert failure_from_catch(None)[0] == "internal_error"
    assert failure_from_catch({"Error": "UpstreamUnavailable", "Cause": "not json"}) == (
        "upstream_unavailable",
        "the image model could not be reached",
    )
