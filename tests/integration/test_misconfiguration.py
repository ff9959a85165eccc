"""A misconfigured deployment says so, through the real API function on the local stack: the
Novita key unreadable or refused, or the Novita balance empty, answer 503 with a code each, and
GET /v1/health finds the first two without paying for a task."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aws_lambda_powertools.utilities import parameters

from local.novita_emulator import Fault
from local.stack import LocalStack

from .conftest import ApiClient
from .test_api import job_count


@pytest.fixture
def key_parameter_deleted(stack: LocalStack) -> Iterator[str]:
    """The deployment's Novita key parameter is gone (put back afterwards). The functions run in
    this process, so Powertools' cache of the key is cleared for them to see it."""
    from zimage.runtime import shared_runtime

    name = shared_runtime().settings.novita_key_parameter
    ssm = stack.client("ssm")
    key = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    ssm.delete_parameter(Name=name)
    parameters.clear_caches()
    try:
        yield name
    finally:
        ssm.put_parameter(Name=name, Value=key, Type="SecureString", Overwrite=True)
        parameters.clear_caches()


def test_a_healthy_deployment_checks_the_key_without_starting_a_task(api: ApiClient, emulator):
    answer = api.request("GET", "/v1/health")

    assert answer.status == 200, answer.data
    assert answer.json() == {"status": "ok", "checks": {"settings": "consistent", "upstream_key": "accepted"}}
    assert (emulator.calls["submit"], emulator.calls["result"]) == (0, 1)


def submit_and_check_both_name(api: ApiClient, code: str, cause: str) -> None:
    """A submit and the health check both answer 503 with the fault's code and its cause."""
    submitted = api.request("POST", "/v1/images", body={"prompt": "a red fox"})
    checked = api.request("GET", "/v1/health")
    for answer in (submitted, checked):
        assert answer.status == 503, answer.data
        error = answer.json()["error"]
        assert error["code"] == code
        assert cause in error["message"]


def test_the_health_check_needs_an_api_key(stack: LocalStack, emulator):
    answer = ApiClient(stack.api_url, api_key=None).request("GET", "/v1/health")

    assert answer.status == 403
    assert emulator.calls["result"] == 0


def test_a_key_novita_refuses_is_named_at_submit_and_by_the_health_check(stack: LocalStack, api: ApiClient, emulator):
    # GIVEN Novita no longer accepts the key the deployment holds
    emulator.configure(api_key="a-key-the-deployment-does-not-have")
    before = job_count(stack)

    submit_and_check_both_name(api, "upstream_key_refused", "INVALID_API_KEY")
    assert job_count(stack) == before


def test_an_unreadable_key_is_named_at_submit_and_no_task_is_started(
    stack: LocalStack, api: ApiClient, emulator, key_parameter_deleted: str
):
    before = job_count(stack)

    submit_and_check_both_name(
        api, "upstream_key_unavailable", f"SSM parameter {key_parameter_deleted}: ParameterNotFound"
    )
    assert emulator.calls["submit"] == emulator.calls["result"] == 0
    assert job_count(stack) == before


def test_an_empty_balance_is_named_and_leaves_no_job(stack: LocalStack, api: ApiClient, emulator):
    emulator.script("submit", Fault(status=400, body={"code": 400, "reason": "BILLING_BALANCE_NOT_ENOUGH"}))
    before = job_count(stack)

    answer = api.request("POST", "/v1/images", body={"prompt": "a red fox"})

    assert answer.status == 503
    assert answer.json()["error"]["code"] == "upstream_balance_empty"
    assert job_count(stack) == before
