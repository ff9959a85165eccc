"""Least privilege, read from the roles `sam deploy` would create: every statement names this
stack's own resources, and the only grants on `*` are the ones AWS offers no narrower form of."""

from __future__ import annotations

import json

import pytest

from .conftest import expand

# AWS has no resource-level permissions for these: X-Ray's trace upload, and the vended log
# delivery that Step Functions' logging configuration needs.
UNSCOPABLE_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
# The two SAM attaches to every function: CloudWatch Logs for the function's own log streams,
# and X-Ray (see above). Any other managed policy would be a grant nobody reviewed here.
MANAGED = {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}


def roles(expanded: dict) -> dict[str, dict]:
    return {name: spec["Properties"] for name, spec in expanded.items() if spec["Type"] == "AWS::IAM::Role"}


def branches(value) -> list:
    """Both sides of a condition (`Fn::If`), leaving out AWS::NoValue: either may be deployed."""
    if isinstance(value, dict) and "Fn::If" in value:
        return [item for side in value["Fn::If"][1:] for item in branches(side)]
    return [] if value == {"Ref": "AWS::NoValue"} else [value]


def statements(role: dict) -> list[dict]:
    found = []
    for policy in (item for entry in role.get("Policies", []) for item in branches(entry)):
        for statement in as_list(policy["PolicyDocument"]["Statement"]):
            found += branches(statement)
    return found


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


@pytest.mark.parametrize("key_source", ["ssm", "secretsmanager"])
def test_every_statement_names_this_stacks_resources(key_source, monkeypatch):
    for name, role in roles(expand(monkeypatch, NovitaApiKeySource=key_source)).items():
        for statement in statements(role):
            actions = set(as_list(statement["Action"]))
            assert "*" not in actions and not any(action.endswith(":*") for action in actions), (name, actions)
            for resource in as_list(statement["Resource"]):
                if resource == "*":
                    assert actions <= UNSCOPABLE_ACTIONS, (name, actions)
                else:
                    # Built from the stack's own resources or parameters, never a literal ARN.
                    assert isinstance(resource, dict), (name, resource)


@pytest.mark.parametrize("key_source", ["ssm", "secretsmanager"])
def test_no_role_carries_a_managed_policy_beyond_logs_and_tracing(key_source, monkeypatch):
    for name, role in roles(expand(monkeypatch, NovitaApiKeySource=key_source)).items():
        attached = {json.dumps(arn).rsplit("/", 1)[-1].strip('"}') for arn in role.get("ManagedPolicyArns", [])}
        assert attached <= MANAGED, (name, attached)
