"""A misconfigured deployment says so: the Novita key unreadable or refused, or the Novita balance
empty, each answers 503 with a code of its own and a message naming what to fix (never the key),
and each is one error log line and one `Misconfigured` metric, the one the template alarms on."""

from __future__ import annotations

import io
import json

import boto3
import pytest
import urllib3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from local.template import load_template
from zimage import errors
from zimage.api.submit import caller_error
from zimage.jobs.quota import upstream_refused
from zimage.misconfiguration import METRIC, account_fault, report_misconfigured
from zimage.runtime import Runtime
from zimage.settings import Settings
from zimage.upstream.errors import (
    UpstreamKeyUnavailable,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamUnavailable,
)
from zimage.upstream.novita import KEY_CHECK_TASK_ID, NovitaClient, error_from_response

TEMPLATE = load_template()
KEY_PARAMETER = "/zimage/novita-api-key"


def novita_error(status: int, reason: str = "") -> Exception:
    body = json.dumps({"code": status, "reason": reason, "message": "as Novita says"}).encode()
    return error_from_response(status, body)


@pytest.mark.parametrize(
    ("upstream", "code"),
    [
        (UpstreamKeyUnavailable("SSM parameter /k: ParameterNotFound"), "upstream_key_unavailable"),
        (novita_error(403, "INVALID_API_KEY"), "upstream_key_refused"),
        (novita_error(401, "INVALID_API_KEY"), "upstream_key_refused"),
        (novita_error(401), "upstream_key_refused"),
        (novita_error(400, "MISSING_API_KEY"), "upstream_key_refused"),
        (novita_error(403, "FEATURE_NOT_ALLOWED"), "upstream_key_refused"),
        (novita_error(403, "BILLING_AUTH_FAILED"), "upstream_key_refused"),
        (novita_error(400, "BILLING_BALANCE_NOT_ENOUGH"), "upstream_balance_empty"),
    ],
)
def test_each_account_fault_is_a_503_with_a_code_of_its_own(upstream, code):
    answer = caller_error(upstream)

    assert isinstance(answer, errors.Misconfigured)
    assert (answer.status, answer.code) == (503, code)
    assert "operator" in answer.message


@pytest.mark.parametrize(
    ("upstream", "status", "code"),
    [
        (novita_error(400, "ILLEGAL_PROMPT"), 400, "invalid_request"),
        (novita_error(400, "INVALID_IMAGE_SIZE"), 400, "invalid_request"),
        (novita_error(429, "RATE_LIMIT_EXCEEDED"), 429, "upstream_rate_limited"),
        (novita_error(500, "CREATE_TASK_FAILED"), 503, "upstream_unavailable"),
        (novita_error(404, "TASK_NOT_FOUND"), 502, "upstream_error"),
    ],
)
def test_faults_of_the_request_or_of_the_moment_are_not_the_operators(upstream, status, code):
    answer = caller_error(upstream)

    assert account_fault(upstream) is None
    assert (answer.status, answer.code) == (status, code)


# --- reading the key ------------------------------------------------------------------------


@pytest.fixture
def runtime(aws, monkeypatch) -> Runtime:
    parameters.clear_caches()
    yield Runtime(Settings.from_env())
    parameters.clear_caches()


def test_a_missing_parameter_names_itself_and_awss_error(runtime):
    with pytest.raises(UpstreamKeyUnavailable) as caught:
        runtime.novita_api_key()

    assert caught.value.aws_error == "ParameterNotFound"
    assert caught.value.message == f"SSM parameter {KEY_PARAMETER}: ParameterNotFound"
    assert caller_error(caught.value).code == "upstream_key_unavailable"


def test_a_missing_secret_names_itself_and_awss_error(aws, monkeypatch):
    monkeypatch.setenv("NOVITA_API_KEY_SOURCE", "secretsmanager")
    monkeypatch.setenv("NOVITA_API_KEY_PARAMETER", "zimage/novita")
    parameters.clear_caches()

    with pytest.raises(UpstreamKeyUnavailable) as caught:
        Runtime(Settings.from_env()).novita_api_key()

    assert caught.value.aws_error == "ResourceNotFoundException"
    assert caught.value.message == "secret zimage/novita: ResourceNotFoundException"


def test_a_key_the_role_may_not_decrypt_gives_the_code_and_not_awss_text(runtime, monkeypatch):
    # GIVEN SSM refuses as it does when the KMS key's policy denies the role kms:Decrypt
    denied = ClientError(
        {
            "Error": {
                "Code": "AccessDeniedException",
                "Message": "User: arn:aws:sts::1:assumed-role/r is not authorized",
            }
        },
        "GetParameter",
    )

    def get_parameter(*args, **kwargs):
        try:
            raise denied
        except ClientError as exc:  # as Powertools does: the AWS error is only the context
            raise GetParameterError(str(exc))  # noqa: B904

    monkeypatch.setattr(parameters, "get_parameter", get_parameter)

    with pytest.raises(UpstreamKeyUnavailable) as caught:
        runtime.novita_api_key()

    assert caught.value.message == f"SSM parameter {KEY_PARAMETER}: AccessDeniedException"
    assert "arn:aws" not in caller_error(caught.value).message


def test_a_readable_key_is_read(runtime):
    boto3.client("ssm").put_parameter(Name=KEY_PARAMETER, Value="sk-live-123", Type="SecureString")

    assert runtime.novita_api_key() == "sk-live-123"


def test_the_key_is_never_in_what_the_caller_or_the_log_is_told(runtime, caplog):
    boto3.client("ssm").put_parameter(Name=KEY_PARAMETER, Value="sk-live-123", Type="SecureString")
    refused = UpstreamRejected("the upstream answered HTTP 403 INVALID_API_KEY", status=403, reason="INVALID_API_KEY")

    fault = account_fault(refused)
    report_misconfigured(fault)

    logged = " ".join(str(record.__dict__) for record in caplog.records)
    assert "INVALID_API_KEY" in logged
    assert "sk-live-123" not in json.dumps(fault.body()) + logged


# --- checking the key without paying ----------------------------------------------------------


class AnsweringHttp:
    """Stands in for urllib3's PoolManager: one canned answer, and the requests it was asked."""

    def __init__(self, status: int, body: dict):
        self.status, self.body = status, json.dumps(body).encode()
        self.asked: list[tuple[str, str, dict]] = []

    def request(self, method: str, url: str, **kwargs) -> urllib3.HTTPResponse:
        self.asked.append((method, url, kwargs.get("fields") or {}))
        return urllib3.HTTPResponse(body=io.BytesIO(self.body), status=self.status, preload_content=False)


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "TASK_NOT_FOUND"), (400, "INVALID_REQUEST_BODY")],
)
def test_the_key_check_accepts_any_refusal_of_the_request_itself(status, reason):
    http = AnsweringHttp(status, {"code": status, "reason": reason})

    NovitaClient("https://api.novita.ai", "sk", http=http).check_key(within=5)

    assert http.asked == [("GET", "https://api.novita.ai/v3/async/task-result", {"task_id": KEY_CHECK_TASK_ID})]


@pytest.mark.parametrize(("status", "reason"), [(403, "INVALID_API_KEY"), (401, ""), (400, "MISSING_API_KEY")])
def test_the_key_check_raises_when_the_key_is_refused(status, reason):
    http = AnsweringHttp(status, {"code": status, "reason": reason})

    with pytest.raises(UpstreamRejected) as caught:
        NovitaClient("https://api.novita.ai", "sk", http=http).check_key(within=5)

    assert caller_error(caught.value).code == "upstream_key_refused"


def test_the_key_check_never_starts_a_task():
    http = AnsweringHttp(404, {"code": 404, "reason": "TASK_NOT_FOUND"})

    NovitaClient("https://api.novita.ai", "sk", http=http).check_key()

    assert all(method == "GET" for method, _, _ in http.asked)


# --- the alarm --------------------------------------------------------------------------------


def test_a_reported_fault_is_the_metric_the_template_alarms_on(monkeypatch, caplog):
    # GIVEN the functions' environment as the template's Globals set it
    environment = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", environment["POWERTOOLS_METRICS_NAMESPACE"])
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", environment["POWERTOOLS_SERVICE_NAME"])
    handler_metrics = Metrics()  # as a handler's, which flushes what any module added
    handler_metrics.clear_metrics()

    # WHEN a fault is reported
    report_misconfigured(errors.ModelBalanceEmpty("no balance"))
    emitted = handler_metrics.serialize_metric_set()
    handler_metrics.clear_metrics()

    # THEN the EMF record is exactly the metric the alarm watches
    alarm = TEMPLATE["Resources"]["MisconfiguredAlarm"]["Properties"]
    definition = emitted["_aws"]["CloudWatchMetrics"][0]
    assert alarm["MetricName"] == METRIC
    assert [m["Name"] for m in definition["Metrics"]] == [METRIC]
    assert definition["Namespace"] == alarm["Namespace"]
    assert definition["Dimensions"] == [[d["Name"] for d in alarm["Dimensions"]]]
    assert {d["Name"]: emitted[d["Name"]] for d in alarm["Dimensions"]} == {
        d["Name"]: d["Value"] for d in alarm["Dimensions"]
    }
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    # AND one error line says which fault
    [line] = [record for record in caplog.records if record.levelname == "ERROR"]
    assert (line.getMessage(), line.code) == ("deployment misconfigured", "upstream_balance_empty")


def test_an_unreadable_key_gives_back_the_jobs_count_since_nothing_was_sent():
    assert upstream_refused(UpstreamKeyUnavailable("SSM parameter /k: ParameterNotFound"))


def test_a_quick_outage_is_not_an_account_fault():
    assert account_fault(UpstreamUnavailable("HTTP 503", status=503)) is None
    assert account_fault(UpstreamRateLimited("HTTP 429")) is None
