"""The bench's cost model, on runs small enough to price by hand: the cost verdict in
docs/performance.md is only as true as these sums."""

import pytest

from bench.run import (
    PRICES,
    cost_per_image,
    floor_fixed_cost_per_image,
    following_costs,
    least_express_cost_per_image,
    orchestration_cost_per_image,
)

# Two jobs: executions of 1.02 s and 2.0 s, 5 and 7 state transitions, 6 Lambda calls, 0.5 GB-s.
RUN = {
    "jobs": 2,
    "durations": [1.02, 2.0],
    "transitions": [5, 7],
    "lambda_invocations": 6,
    "lambda_gb_seconds": 0.5,
    "aws_calls": {"PutItem": 2, "UpdateItem": 4, "GetItem": 3, "PutObject": 2, "PutEvents": 2, "StartExecution": 2},
}
LAMBDA = 6 * PRICES["lambda_request"] + 0.5 * PRICES["lambda_gb_second_arm"]
# Per image, what any poller pays: the POST and one GET, the S3 PUT and the client's download,
# three DynamoDB writes and 1.5 reads, one event.
FIXED = (
    2 * PRICES["apigw_rest_request"]
    + PRICES["s3_put"]
    + PRICES["s3_get"]
    + 3 * PRICES["dynamodb_write"]
    + 1.5 * PRICES["dynamodb_read"]
    + PRICES["eventbridge_event"]
)


def test_express_bills_each_execution_and_its_duration_in_100_ms_steps_at_64_mb():
    # 1.02 s bills as 1.1 s.
    express = 2 * PRICES["sfn_express_request"] + (1.1 + 2.0) * 0.0625 * PRICES["sfn_express_gb_second"]

    assert orchestration_cost_per_image(RUN, "EXPRESS") == pytest.approx((express + LAMBDA) / 2)
    assert cost_per_image(RUN, "EXPRESS") == pytest.approx((express + LAMBDA) / 2 + FIXED)


def test_standard_bills_state_transitions():
    standard = 12 * PRICES["sfn_standard_transition"]

    assert orchestration_cost_per_image(RUN, "STANDARD") == pytest.approx((standard + LAMBDA) / 2)
    assert cost_per_image(RUN, "STANDARD") == pytest.approx((standard + LAMBDA) / 2 + FIXED)


def test_the_least_express_bill_is_the_fixed_requests_plus_one_execution_living_through_the_task():
    # The POST and one GET, the S3 PUT and GET, the writes and reads measured before the schedule
    # learned, and the completion event: frozen, whatever a run makes.
    fixed = (
        2 * PRICES["apigw_rest_request"]
        + PRICES["s3_put"]
        + PRICES["s3_get"]
        + 5.62 * PRICES["dynamodb_write"]
        + 2 * PRICES["dynamodb_read"]
        + PRICES["eventbridge_event"]
    )
    least = fixed + PRICES["sfn_express_request"] + 5.5 * 0.0625 * PRICES["sfn_express_gb_second"]

    assert floor_fixed_cost_per_image() == pytest.approx(fixed)
    assert least_express_cost_per_image(5.5) == pytest.approx(least)


# The same two jobs followed by a client: five API requests (the two POSTs, three reads), the
# reads held 1.0 s in all, from the submits' answers to the jobs' ends 1.2 s and 0.4 s.
FOLLOWED = {
    **RUN,
    "following": {"api_requests": 5, "get_seconds": 1.0, "reads": 3, "followed_seconds": [1.2, 0.4]},
}
READ_GB_SECOND = 0.25 * PRICES["lambda_gb_second_arm"]  # the API function's 256 MB


def test_a_followed_run_pays_every_read_and_its_held_lambda():
    api = 5 * PRICES["apigw_rest_request"] + 3 * PRICES["lambda_request"] + 1.0 * READ_GB_SECOND
    # without following, the bill assumes the POST and one GET per job
    api_assumed = 4 * PRICES["apigw_rest_request"]

    assert cost_per_image(FOLLOWED, "EXPRESS") - cost_per_image(RUN, "EXPRESS") == pytest.approx(
        (api - api_assumed) / 2
    )


def test_each_way_of_following_is_priced_from_the_jobs_times():
    costs = following_costs(FOLLOWED, read_seconds=0.02)
    call = PRICES["apigw_rest_request"] + PRICES["lambda_request"]
    one_read = call + 0.02 * READ_GB_SECOND + PRICES["dynamodb_read"]

    # every 0.5 s from the answer: 1 + 3 reads for 1.2 s, 1 + 1 for 0.4 s
    assert costs["get_every_half_second"] == pytest.approx(6 * one_read / 2)
    # held from the answer to the end, 1.6 s in all, re-read four times a second
    held = 2 * call + 1.6 * READ_GB_SECOND
    assert costs["prefer_wait_rereading"] == pytest.approx((held + (1.6 * 4 + 2) * PRICES["dynamodb_read"]) / 2)
    assert costs["prefer_wait_lean"] < costs["prefer_wait_rereading"]
    assert costs["eventbridge"] == 0
