"""The bench's cost model, on runs small enough to price by hand: the cost verdict in
docs/performance.md is only as true as these sums."""

import pytest

from bench.run import PRICES, cost_per_image, least_express_cost_per_image, orchestration_cost_per_image

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
    least = FIXED + PRICES["sfn_express_request"] + 5.5 * 0.0625 * PRICES["sfn_express_gb_second"]

    assert least_express_cost_per_image(RUN, 5.5) == pytest.approx(least)
