"""template.yaml and the state machine file hold the properties the design relies on."""

from __future__ import annotations

import json
import re

import pytest

from local.template import ROOT, Resolver, load_template, substitute_definition

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def resolved_definition() -> dict:
    spec = RESOURCES["ImageJobStateMachine"]["Properties"]
    resolver = Resolver(TEMPLATE, {})
    resolver.refs["ImageEventBus"] = "zimage-images"
    for logical in ("PollFunction", "RecordFailureFunction"):
        resolver.attributes[(logical, "Arn")] = f"arn:aws:lambda:us-east-1:123456789012:function:{logical}"
    text = substitute_definition(
        (ROOT / spec["DefinitionUri"]).read_text(), resolver.resolve(spec["DefinitionSubstitutions"])
    )
    return json.loads(text)


def test_the_state_machine_file_names_no_resource_itself():
    text = (ROOT / "statemachine" / "image_job.asl.json").read_text()

    assert not re.search(r"arn:aws:(lambda|dynamodb|s3):", text)


def test_the_workflow_is_bounded_by_a_timeout_and_a_poll_cap():
    definition = resolved_definition()

    assert definition["TimeoutSeconds"] == 290  # inside Express's five minutes
    route = definition["States"]["RouteOnStatus"]
    assert {"Variable": "$.polls", "NumericGreaterThanEquals": 120, "Next": "PollLimitReached"} in route["Choices"]


def test_the_wait_comes_from_the_poll_step_not_a_constant():
    wait = resolved_definition()["States"]["WaitForTask"]

    assert wait == {"Type": "Wait", "SecondsPath": "$.wait_seconds", "Next": "PollTask"}


@pytest.mark.parametrize("name", ["PollTask", "RecordFailure", "EmitSucceeded", "EmitFailed"])
def test_every_task_retries_with_backoff(name):
    task = resolved_definition()["States"][name]

    assert task["Retry"]
    assert all(rule.get("BackoffRate", 1) >= 2 for rule in task["Retry"])


def test_everything_the_poll_step_cannot_survive_goes_to_the_failure_path():
    catch = resolved_definition()["States"]["PollTask"]["Catch"]

    assert catch == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordFailure"}]


def test_the_bucket_is_private_encrypted_tls_only_and_expires_images():
    bucket = RESOURCES["ImagesBucket"]["Properties"]
    policy = RESOURCES["ImagesBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0]

    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert policy["Effect"] == "Deny" and policy["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert bucket["LifecycleConfiguration"]["Rules"][0]["ExpirationInDays"] == {"Ref": "ImageRetentionDays"}


def test_the_jobs_table_is_on_demand_with_ttl():
    table = RESOURCES["JobsTable"]["Properties"]

    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_every_function_runs_python_313_on_arm_with_tracing_and_its_own_log_group():
    function_globals = TEMPLATE["Globals"]["Function"]
    functions = [name for name, spec in RESOURCES.items() if spec["Type"] == "AWS::Serverless::Function"]

    assert (function_globals["Runtime"], function_globals["Architectures"], function_globals["Tracing"]) == (
        "python3.13",
        ["arm64"],
        "Active",
    )
    for name in functions:
        log_group = RESOURCES[f"{name}LogGroup"]["Properties"]
        assert log_group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/${{{name}}}"}
        assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_no_policy_grants_every_action_on_every_resource():
    text = (ROOT / "template.yaml").read_text()

    assert not re.search(r"Action:\s*['\"]?\*['\"]?\s*$", text, re.MULTILINE)


@pytest.mark.parametrize("key_source", ["ssm", "secretsmanager"])
def test_the_sam_transform_accepts_the_template(key_source, monkeypatch):
    """What `sam deploy` does first: expand the SAM resources. cfn-lint alone does not catch
    everything the transform refuses."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = json.loads(json.dumps(load_template(), default=str))
    for resource in template["Resources"].values():  # what `sam package` puts in place of local paths
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://artifacts/{name}.zip"
        if isinstance(properties.get("DefinitionUri"), str):
            properties["DefinitionUri"] = {"Bucket": "artifacts", "Key": "image_job.asl.json"}

    class ManagedPolicies:
        def load(self) -> dict:
            return {
                name: f"arn:aws:iam::aws:policy/{name}"
                for name in ("AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess")
            } | {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}

    expanded = transform(template, {"NovitaApiKeySource": key_source}, ManagedPolicies())["Resources"]

    assert "ImageApiApiKey" in expanded and "ImageApiUsagePlan" in expanded  # named in Outputs
    roles = {
        name: json.dumps(spec["Properties"]) for name, spec in expanded.items() if spec["Type"] == "AWS::IAM::Role"
    }
    assert all('"Action": "*"' not in role and '"dynamodb:*"' not in role for role in roles.values())
    grant = "secretsmanager:GetSecretValue" if key_source == "secretsmanager" else "ssm:GetParameter"
    assert grant in roles["PollFunctionRole"]
