"""What the local stack does to Powertools so that `make run` prints what AWS would: each
invocation's own Lambda context keys, and no warning about metrics it has switched off."""

from __future__ import annotations

import io
import json
import threading
import warnings
from types import SimpleNamespace

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

from local.stack import ThreadLogKeys, _quiet_empty_metrics_warnings


def a_context(name: str) -> SimpleNamespace:
    return SimpleNamespace(
        function_name=name,
        memory_limit_in_mb=128,
        invoked_function_arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}",
        aws_request_id=f"request-of-{name}",
    )


def test_two_functions_logging_at_once_each_keep_their_own_context_keys():
    # GIVEN two functions' loggers, one logging.Logger as on the local stack, with the stack's formatter
    out = io.StringIO()
    first = Logger(service="unit-thread-keys", stream=out)
    second = Logger(service="unit-thread-keys")
    restores = ThreadLogKeys.install()
    both_started = threading.Barrier(2)

    def invoke(logger: Logger, name: str) -> None:
        @logger.inject_lambda_context(correlation_id_path="job", clear_state=True)
        def handler(event: dict, context: object) -> None:
            both_started.wait()  # each has put its keys on the formatter before either logs
            logger.info("working")

        handler({"job": f"job-of-{name}"}, a_context(name))

    # WHEN they run at the same time on two threads, as the stack runs invocations
    try:
        threads = [
            threading.Thread(target=invoke, args=(first, "FirstFunction")),
            threading.Thread(target=invoke, args=(second, "SecondFunction")),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    finally:
        for restore in restores:
            restore.stop()

    # THEN each line names the function, request and job of the invocation that wrote it
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted((line["function_name"], line["function_request_id"], line["correlation_id"]) for line in lines) == [
        ("FirstFunction", "request-of-FirstFunction", "job-of-FirstFunction"),
        ("SecondFunction", "request-of-SecondFunction", "job-of-SecondFunction"),
    ]
    assert all(line["service"] == "unit-thread-keys" for line in lines)
    # and stopping the stack puts Powertools' own formatter back
    assert type(first.registered_formatter) is LambdaPowertoolsFormatter


def test_an_invocation_that_adds_no_metric_warns_nothing_on_the_stack():
    metrics = Metrics(namespace="UnitTest", service="unit")

    @metrics.log_metrics
    def handler(event: dict, context: object) -> None:
        pass  # a GET, say: nothing to count

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _quiet_empty_metrics_warnings()
        handler({}, None)
        warnings.warn("No application metrics to publish", UserWarning, stacklevel=1)  # not from Powertools

    assert [str(warning.message) for warning in caught] == ["No application metrics to publish"]
