"""Least privilege, read from the roles `sam deploy` would create: every statement names this
stack's own resources, and the only grants on `*` are the ones AWS offers no narrower form of."""

from __future__ import annotations

import json
import re

import pytest

from local.template import ROOT

from ..conftest import expand

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


def test_the_state_machine_role_grants_every_integration_its_states_call(monkeypatch):
    """The local stack's Step Functions does not check IAM, so a state calling a service its role
    cannot reach would first fail on AWS: each Task's integration has its grant."""
    text = (ROOT / "statemachine" / "image_job.asl.json").read_text()
    definition = json.loads(re.sub(r"\$\{\w+\}", "1", text))  # the substitutions' values do not matter here
    actions = {"lambda:invoke": "lambda:InvokeFunction"}  # the one integration not named as its action
    wanted = set()
    for state in definition["States"].values():
        resource = state.get("Resource", "")
        if resource.startswith("arn:aws:states:::"):
            service, api = resource.removeprefix("arn:aws:states:::").split(":")[:2]
            wanted.add(actions.get(f"{service}:{api}", f"{service}:{api[0].upper()}{api[1:]}"))
        elif state.get("Type") == "Task":  # a function's ARN: invoked directly
            wanted.add("lambda:InvokeFunction")
    role = roles(expand(monkeypatch, NovitaApiKeySource="ssm"))["ImageJobStateMachineRole"]
    granted = {action for statement in statements(role) for action in as_list(statement["Action"])}

    assert wanted and wanted <= granted, wanted - granted
