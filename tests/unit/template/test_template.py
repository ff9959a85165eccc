"""template.yaml and the state machine file hold the properties the design relies on."""

from __future__ import annotations

import importlib.metadata
import json
import re

import pytest
from packaging.requirements import Requirement

from local.template import ROOT, Resolver, load_template, substitute_definition

from ..conftest import expand

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]


def resolved_definition(partition: str = "aws") -> dict:
    spec = RESOURCES["ImageJobStateMachine"]["Properties"]
    resolver = Resolver(TEMPLATE, {})
    resolver.pseudo["AWS::Partition"] = partition
    resolver.refs["ImageEventBus"] = "zimage-images"
    resolver.refs["JobsTable"] = "zimage-jobs"
    for logical in ("PollFunction", "RecordFailureFunction"):
        resolver.attributes[(logical, "Arn")] = f"arn:{partition}:lambda:us-east-1:123456789012:function:{logical}"
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

    assert wait == {"Type": "Wait", "SecondsPath": "$.wait_seconds", "Next": "Poll"}


@pytest.mark.parametrize(
    "name", ["Poll", "RecordFailure", "AnnounceSucceeded", "AnnounceFailed", "MarkAnnounced", "MarkFailedAnnounced"]
)
def test_every_task_retries_with_backoff(name):
    task = resolved_definition()["States"][name]

    assert task["Retry"]
    assert all(rule.get("BackoffRate", 1) >= 2 for rule in task["Retry"] if rule["MaxAttempts"] > 0)


@pytest.mark.parametrize(
    ("announce", "mark", "end"),
    [("AnnounceSucceeded", "MarkAnnounced", "JobSucceeded"), ("AnnounceFailed", "MarkFailedAnnounced", "JobFailed")],
)
def test_a_job_leaves_the_sweepers_index_only_after_its_event_is_sent(announce, mark, end):
    """An execution that dies before its mark state (its hard timeout) leaves the job listed, and
    the sweeper sends its event: so the workflow's steps never take it out themselves."""
    states = resolved_definition()["States"]

    assert states[announce]["Next"] == mark
    assert [rule["Next"] for rule in states[announce]["Catch"]] == [end]  # refused: left for the sweeper
    assert states[mark]["Resource"] == "arn:aws:states:::dynamodb:updateItem"
    assert states[mark]["Parameters"]["UpdateExpression"] == "REMOVE active_shard"
    assert states[mark]["Parameters"]["Key"] == {"job_id": {"S.$": "$.job_id"}}
    assert all(rule["Next"] == end for rule in states[mark]["Catch"])
    assert states[mark].get("Next", end) == end  # a succeeded job's execution ends at its mark


def test_the_state_machine_is_given_no_deadline_of_its_own_but_its_timeout():
    """The job's deadline is derived from ExecutionTimeoutSeconds (zimage.workflow.timing), never set apart."""
    assert "PollDeadlineSeconds" not in TEMPLATE["Parameters"]
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert variables["EXECUTION_TIMEOUT_SECONDS"] == {"Ref": "ExecutionTimeoutSeconds"}
    assert variables["POLL_TURN_SECONDS"] == {"Ref": "PollTurnSeconds"}
    assert RESOURCES["PollFunction"]["Properties"]["Timeout"] == {"Ref": "PollTurnSeconds"}


@pytest.mark.parametrize(
    ("parameters", "refused"),
    [
        ({"ExecutionTimeoutSeconds": 600}, "EXPRESS execution lasts 300 seconds at most"),
        ({"ExecutionTimeoutSeconds": 240, "WorkflowType": "STANDARD"}, None),
        ({"ExecutionTimeoutSeconds": 3600, "WorkflowType": "STANDARD"}, None),
        ({"ExecutionTimeoutSeconds": 250}, "not one of"),
        ({"PollTurnSeconds": 9}, "below 10"),
    ],
)
def test_cloudformation_refuses_an_express_workflow_past_five_minutes(parameters, refused):
    """The template's Rule, evaluated as CloudFormation does before creating anything (the local
    stack's resolver checks parameters and Rules alike)."""
    if refused is None:
        Resolver(TEMPLATE, parameters)
    else:
        with pytest.raises(ValueError, match=refused):
            Resolver(TEMPLATE, parameters)


def test_the_rule_lists_exactly_the_allowed_timeouts_express_can_run():
    allowed = TEMPLATE["Parameters"]["ExecutionTimeoutSeconds"]["AllowedValues"]
    (assertion,) = TEMPLATE["Rules"]["ExpressExecutionsEndWithinFiveMinutes"]["Assertions"]
    listed, _ = assertion["Assert"]["Fn::Contains"]

    assert listed == [str(value) for value in allowed if value <= 300]


def test_everything_the_poll_step_cannot_survive_goes_to_the_failure_path():
    catch = resolved_definition()["States"]["Poll"]["Catch"]

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


def test_the_shared_layer_is_named_per_stack_and_replaced_versions_are_deleted(monkeypatch):
    # SAM's defaults would name it "SharedLayer" in every stack and keep every replaced version.
    layers = [r for r in expand(monkeypatch).values() if r["Type"] == "AWS::Lambda::LayerVersion"]

    assert len(layers) == 1
    assert layers[0]["Properties"]["LayerName"] == {"Fn::Sub": "${AWS::StackName}-shared"}
    assert layers[0]["DeletionPolicy"] == "Delete"


POWERTOOLS_CN = "arn:aws-cn:lambda:cn-north-1:498634801083:layer:AWSLambdaPowertoolsPythonV3-python313-arm64:27"
REQUIREMENTS = (ROOT / "requirements-dev.txt").read_text()


def pinned(package: str) -> str:
    """The version requirements-dev.txt pins `package` to (extras allowed)."""
    found = re.search(rf"^{re.escape(package)}(\[[^\]]*\])?==(\S+)", REQUIREMENTS, re.MULTILINE)
    assert found, f"requirements-dev.txt pins no {package}"
    return found[2]


def powertools_layer(parameters: dict) -> str:
    resolver = Resolver(TEMPLATE, parameters)
    resolver.refs["SharedLayer"] = "shared-layer-version-arn"
    shared, powertools = resolver.resolve(TEMPLATE["Globals"]["Function"]["Layers"])
    assert shared == "shared-layer-version-arn"
    return powertools


def test_production_runs_the_powertools_release_the_tests_run():
    """The layer comes from Powertools' public SSM parameter for the exact release the tests pin,
    never `latest` nor a layer number (version 27 ships 3.23.0, for one): CloudFormation resolves
    the parameter in the stack's region at deploy time."""
    release = pinned("aws-lambda-powertools")

    assert powertools_layer({}) == f"{{{{resolve:ssm:/aws/service/powertools/python/arm64/python3.13/{release}}}}}"
    assert importlib.metadata.version("aws-lambda-powertools") == release  # what the tests import


def test_the_tests_run_a_pydantic_that_powertools_release_accepts():
    """The API's models run on the pydantic that the Powertools layer bundles; requirements-dev.txt
    pins the one that was current at the pinned release, within the release's own range."""
    requirement = next(
        Requirement(line)
        for line in importlib.metadata.requires("aws-lambda-powertools")
        if line.startswith("pydantic<") or line.startswith("pydantic>")
    )

    assert requirement.specifier.contains(pinned("pydantic"))
    assert importlib.metadata.version("pydantic") == pinned("pydantic")


def test_a_given_layer_arn_replaces_the_public_layer():
    assert powertools_layer({"PowertoolsLayerArn": POWERTOOLS_CN}) == POWERTOOLS_CN


def test_the_workflow_names_its_service_integrations_in_the_stacks_partition():
    for partition in ("aws", "aws-cn", "aws-us-gov"):
        text = json.dumps(resolved_definition(partition))
        resources = [
            state["Resource"] for state in resolved_definition(partition)["States"].values() if "Resource" in state
        ]

        assert resources and all(arn.startswith(f"arn:{partition}:states:::") for arn in resources)
        assert partition == "aws" or "arn:aws:" not in text


def test_the_powertools_layer_arn_takes_any_partition_but_only_a_layer_version():
    pattern = TEMPLATE["Parameters"]["PowertoolsLayerArn"]["AllowedPattern"]

    assert TEMPLATE["Parameters"]["PowertoolsLayerArn"]["Default"] == ""
    for accepted in (
        "",
        POWERTOOLS_CN,
        POWERTOOLS_CN.replace("aws-cn:lambda:cn-north-1", "aws-us-gov:lambda:us-gov-west-1"),
    ):
        assert re.fullmatch(pattern, accepted)
    for refused in ("{{resolve:ssm:/aws/service/powertools/python/arm64/python3.13/latest}}", POWERTOOLS_CN[:-3]):
        assert not re.fullmatch(pattern, refused)


def test_no_policy_grants_every_action_on_every_resource():
    text = (ROOT / "template.yaml").read_text()

    assert not re.search(r"Action:\s*['\"]?\*['\"]?\s*$", text, re.MULTILINE)


@pytest.mark.parametrize("key_source", ["ssm", "secretsmanager"])
def test_the_sam_transform_accepts_the_template(key_source, monkeypatch):
    """cfn-lint alone does not catch everything the transform refuses."""
    expanded = expand(monkeypatch, NovitaApiKeySource=key_source)

    assert "ImageApiApiKey" in expanded and "ImageApiUsagePlan" in expanded  # named in Outputs
    roles = {
        name: json.dumps(spec["Properties"]) for name, spec in expanded.items() if spec["Type"] == "AWS::IAM::Role"
    }
    assert all('"Action": "*"' not in role and '"dynamodb:*"' not in role for role in roles.values())
    grant = "secretsmanager:GetSecretValue" if key_source == "secretsmanager" else "ssm:GetParameter"
    assert grant in roles["PollFunctionRole"]
    # The poll step stores images, and only under images/: the bucket's other keys are not its.
    assert "s3:PutObject" in roles["PollFunctionRole"] and "/images/*" in roles["PollFunctionRole"]
    assert '"s3:' not in roles["RecordFailureFunctionRole"]


# --- the API's access: keys, the usage plan, API Gateway's own answers --------------------------


def deployed_api(monkeypatch, **parameters: object) -> dict:
    """The REST API's OpenAPI body as SAM deploys it."""
    return expand(monkeypatch, **parameters)["ImageApi"]["Properties"]["Body"]


def test_every_image_method_requires_an_api_key_and_only_the_document_and_the_page_are_open(monkeypatch):
    paths = deployed_api(monkeypatch)["paths"]

    security = {(path, method.upper()): op.get("security") for path, ops in paths.items() for method, op in ops.items()}
    assert security == {
        ("/v1/images", "POST"): [{"api_key": []}],
        ("/v1/images", "GET"): [{"api_key": []}],
        ("/v1/images/{job_id}", "GET"): [{"api_key": []}],
        ("/v1/images/{job_id}", "DELETE"): [{"api_key": []}],
        ("/v1/health", "GET"): [{"api_key": []}],
        ("/v1/openapi.json", "GET"): [],
        ("/", "GET"): [],  # the page asks for the key itself
    }
    assert deployed_api(monkeypatch)["components"]["securitySchemes"]["api_key"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }


def test_the_usage_plan_takes_rate_burst_and_quota_from_the_parameters(monkeypatch):
    source = RESOURCES["ImageApi"]["Properties"]["Auth"]["UsagePlan"]
    expanded = expand(monkeypatch, ApiRateLimit=7, ApiBurstLimit=13, ApiMonthlyQuota=4242)
    plan = expanded["ImageApiUsagePlan"]["Properties"]
    defaults = expand(monkeypatch)["ImageApiUsagePlan"]["Properties"]
    parameters = TEMPLATE["Parameters"]

    assert source["Throttle"] == {"RateLimit": {"Ref": "ApiRateLimit"}, "BurstLimit": {"Ref": "ApiBurstLimit"}}
    assert source["Quota"] == {"Limit": {"Ref": "ApiMonthlyQuota"}, "Period": "MONTH"}
    assert (plan["Throttle"], plan["Quota"]) == ({"RateLimit": 7, "BurstLimit": 13}, {"Limit": 4242, "Period": "MONTH"})
    assert (defaults["Throttle"]["RateLimit"], defaults["Throttle"]["BurstLimit"], defaults["Quota"]["Limit"]) == (
        parameters["ApiRateLimit"]["Default"],
        parameters["ApiBurstLimit"]["Default"],
        parameters["ApiMonthlyQuota"]["Default"],
    )
    assert plan["ApiStages"] == [{"ApiId": {"Ref": "ImageApi"}, "Stage": {"Ref": "ImageApiStage"}}]
    assert expanded["ImageApiUsagePlanKey"]["Properties"]["UsagePlanId"] == {"Ref": "ImageApiUsagePlan"}


def test_the_api_has_one_stage_the_logged_and_throttled_one(monkeypatch):
    # Without OpenApiVersion SAM's Deployment also makes a stage named "Stage": no access log,
    # no stage throttling, and the functions' invoke permissions cover every stage.
    expanded = expand(monkeypatch)
    deployments = [r for r in expanded.values() if r["Type"] == "AWS::ApiGateway::Deployment"]
    stages = [r for r in expanded.values() if r["Type"] == "AWS::ApiGateway::Stage"]

    assert len(deployments) == 1 and "StageName" not in deployments[0]["Properties"]
    assert len(stages) == 1 and stages[0]["Properties"]["StageName"] == {"Ref": "Stage"}
    assert stages[0]["Properties"]["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]}


def gateway_responses(monkeypatch) -> dict:
    return deployed_api(monkeypatch)["x-amazon-apigateway-gateway-responses"]


def rendered(response: dict, message: str = "Something API Gateway says") -> object:
    """The body API Gateway sends: $context.error.messageString is the message as a JSON string."""
    template = response["responseTemplates"]["application/json"]
    return json.loads(template.replace("$context.error.messageString", json.dumps(message)))


def assert_error_model(body: object, code: str) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code)
    assert body["error"]["message"].strip()


def test_a_missing_or_unknown_key_stays_api_gateways_own_forbidden(monkeypatch):
    """Both are INVALID_API_KEY; without its own entry it would take DEFAULT_4XX's shape."""
    response = gateway_responses(monkeypatch)["INVALID_API_KEY"]

    assert response["statusCode"] == "403"
    assert rendered(response) == {"message": "Forbidden"}
    assert not response["responseParameters"]


def test_an_unknown_route_is_404_not_found_naming_every_route(monkeypatch):
    from local.api_gateway import routes_from_template

    response = gateway_responses(monkeypatch)["MISSING_AUTHENTICATION_TOKEN"]
    body = rendered(response)

    assert response["statusCode"] == "404"
    assert_error_model(body, "not_found")
    routes = {f"{method} {path}" for method, path, _, _ in routes_from_template(TEMPLATE)}
    assert len(routes) == 7
    assert all(route in body["error"]["message"] for route in routes), routes


@pytest.mark.parametrize(
    ("response_type", "code", "retry_after"),
    [("THROTTLED", "rate_limited", "1"), ("QUOTA_EXCEEDED", "quota_exceeded", "3600")],
)
def test_the_usage_plans_refusals_are_429_with_retry_after(monkeypatch, response_type, code, retry_after):
    response = gateway_responses(monkeypatch)[response_type]

    assert response["statusCode"] == "429"
    assert_error_model(rendered(response), code)
    assert response["responseParameters"] == {"gatewayresponse.header.Retry-After": f"'{retry_after}'"}


@pytest.mark.parametrize(
    ("response_type", "status", "code"),
    [("REQUEST_TOO_LARGE", "413", "payload_too_large"), ("INTEGRATION_TIMEOUT", "504", "gateway_timeout")],
)
def test_other_gateway_answers_with_a_status_of_the_contract_use_its_code(monkeypatch, response_type, status, code):
    response = gateway_responses(monkeypatch)[response_type]

    assert response["statusCode"] == status
    assert_error_model(rendered(response), code)


@pytest.mark.parametrize(
    ("response_type", "code"), [("DEFAULT_4XX", "request_refused"), ("DEFAULT_5XX", "internal_error")]
)
def test_every_other_gateway_answer_keeps_its_status_and_api_gateways_message(monkeypatch, response_type, code):
    response = gateway_responses(monkeypatch)[response_type]
    body = rendered(response, 'Request "too" large')

    assert "statusCode" not in response  # one here would replace the status of every 4xx or 5xx
    assert_error_model(body, code)
    assert body["error"]["message"] == 'Request "too" large'


def test_only_the_key_refusal_is_outside_the_error_model(monkeypatch):
    outside = [name for name, response in gateway_responses(monkeypatch).items() if "error" not in rendered(response)]

    assert outside == ["INVALID_API_KEY"]


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, {"KeyInSecretsManager": False, "KeyInSsm": True, "NotifyAlarms": False, "CreateEventBus": True}),
        (
            {"NovitaApiKeySource": "secretsmanager", "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:ops"},
            {"KeyInSecretsManager": True, "KeyInSsm": False, "NotifyAlarms": True, "CreateEventBus": True},
        ),
    ],
)
def test_the_local_stack_reads_every_condition_as_cloudformation_does(parameters, expected):
    resolver = Resolver(TEMPLATE, parameters)

    assert {name: resolver.condition(name) for name in expected} == expected


def test_an_intrinsic_the_local_stack_cannot_resolve_is_refused_not_passed_on():
    with pytest.raises(NotImplementedError, match="Fn::FindInMap"):
        Resolver(TEMPLATE, {}).resolve({"Fn::FindInMap": ["Map", "Key", "Value"]})


@pytest.mark.parametrize(("base64_output", "poll_memory"), [("false", 128), ("true", 256)])
def test_the_poll_function_runs_at_the_least_memory_unless_it_parses_base64_images(
    monkeypatch, base64_output, poll_memory
):
    resolver = Resolver(TEMPLATE, {"NovitaBase64Output": base64_output})
    memory = {
        name: int(resolver.resolve({"value": spec["Properties"]["MemorySize"]})["value"])
        for name, spec in expand(monkeypatch, NovitaBase64Output=base64_output).items()
        if spec["Type"] == "AWS::Lambda::Function"
    }

    assert memory["PollFunction"] == poll_memory


# --- concurrency: reservations the API cannot take, and the alarm when the workflow is short ----
# The local stack runs every handler in one process and cannot throttle; these pin the template.

TOPIC = "arn:aws:sns:us-east-1:123456789012:ops"


def reservations(monkeypatch, **parameters: object) -> dict[str, int]:
    """Each function's ReservedConcurrentExecutions as CloudFormation sets it from the expanded
    template (SAM passes the Fn::If on; the local resolver evaluates it as CloudFormation does)."""
    resolver = Resolver(TEMPLATE, parameters)
    found = {}
    for name, spec in expand(monkeypatch, **parameters).items():
        if spec["Type"] == "AWS::Lambda::Function" and "ReservedConcurrentExecutions" in spec["Properties"]:
            value = resolver.resolve({"value": spec["Properties"]["ReservedConcurrentExecutions"]})
            if "value" in value:
                found[name] = int(value["value"])
    return found


def test_no_function_reserves_concurrency_by_default(monkeypatch):
    """A reservation must leave the account 100 unreserved executions; a new account has 10."""
    parameters = TEMPLATE["Parameters"]

    assert (parameters["ApiMaxConcurrency"]["Default"], parameters["WorkflowReservedConcurrency"]["Default"]) == (0, 0)
    assert reservations(monkeypatch) == {}
    assert reservations(monkeypatch, ApiMaxConcurrency=0, WorkflowReservedConcurrency=0) == {}


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"ApiMaxConcurrency": 50}, {"ApiFunction": 50}),
        (
            {"WorkflowReservedConcurrency": 20},
            {"PollFunction": 20, "RecordFailureFunction": 20},
        ),
        (
            {"ApiMaxConcurrency": 50, "WorkflowReservedConcurrency": 20},
            {"ApiFunction": 50, "PollFunction": 20, "RecordFailureFunction": 20},
        ),
    ],
)
def test_each_reservation_goes_to_the_functions_it_names_and_no_other(monkeypatch, parameters, expected):
    assert reservations(monkeypatch, **parameters) == expected


def test_the_concurrency_parameters_say_why_they_are_off_by_default():
    for name in ("ApiMaxConcurrency", "WorkflowReservedConcurrency"):
        spec = TEMPLATE["Parameters"][name]
        assert (spec["Type"], spec["MinValue"]) == ("Number", 0)
        assert "100 executions" in spec["Description"] and "new account" in spec["Description"]


@pytest.mark.parametrize(
    ("parameters", "expected", "refused"),
    [
        ({}, {"CapApiConcurrency": False, "ReserveWorkflowConcurrency": False}, None),
        (
            {"ApiMaxConcurrency": 50, "WorkflowReservedConcurrency": "20"},
            {"CapApiConcurrency": True, "ReserveWorkflowConcurrency": True},
            None,
        ),
        ({"ApiMaxConcurrency": -1}, None, "ApiMaxConcurrency=-1 is below 0"),
        ({"WorkflowReservedConcurrency": -5}, None, "WorkflowReservedConcurrency=-5 is below 0"),
    ],
)
def test_the_local_stack_accepts_the_concurrency_parameters_as_cloudformation_does(parameters, expected, refused):
    if refused is not None:
        with pytest.raises(ValueError, match=refused):
            Resolver(TEMPLATE, parameters)
        return
    resolver = Resolver(TEMPLATE, parameters)

    assert {name: resolver.condition(name) for name in expected} == expected


def throttle_alarms(monkeypatch, **parameters: object) -> dict[str, dict]:
    resolver = Resolver(TEMPLATE, parameters)
    return {
        name: resolver.resolve({k: v for k, v in spec["Properties"].items() if k != "Dimensions"})
        | {"Dimensions": spec["Properties"]["Dimensions"]}
        for name, spec in expand(monkeypatch, **parameters).items()
        if spec["Type"] == "AWS::CloudWatch::Alarm" and spec["Properties"].get("MetricName") == "Throttles"
    }


def test_throttles_of_the_workflow_functions_raise_an_alarm(monkeypatch):
    alarms = throttle_alarms(monkeypatch)

    watched = {alarm["Dimensions"][0]["Value"]["Ref"] for alarm in alarms.values()}
    assert watched == {"PollFunction", "RecordFailureFunction"}
    for alarm in alarms.values():
        assert alarm["Namespace"] == "AWS/Lambda"
        assert [d["Name"] for d in alarm["Dimensions"]] == ["FunctionName"]
        assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
            "Sum",
            1,
            "GreaterThanOrEqualToThreshold",
        )
        assert alarm["TreatMissingData"] == "notBreaching"
        assert "AlarmActions" not in alarm and "OKActions" not in alarm  # no AlarmTopicArn: console only


def test_the_throttle_alarms_notify_the_alarm_topic_when_one_is_given(monkeypatch):
    alarms = throttle_alarms(monkeypatch, AlarmTopicArn=TOPIC)

    assert len(alarms) == 2
    for alarm in alarms.values():
        assert (alarm["AlarmActions"], alarm["OKActions"]) == ([TOPIC], [TOPIC])


# Resources that hold data or identity: renaming one's logical id makes CloudFormation replace it,
# losing its data (or handing customers a new API key). These ids are frozen.
STATEFUL = {
    "JobsTable": "AWS::DynamoDB::Table",
    "IdempotencyTable": "AWS::DynamoDB::Table",
    "ImagesBucket": "AWS::S3::Bucket",
    "ImageEventBus": "AWS::Events::EventBus",
    "WebhookSigningSecret": "AWS::SecretsManager::Secret",
    "WebhookQueue": "AWS::SQS::Queue",
    "WebhookDeadLetterQueue": "AWS::SQS::Queue",
    "RequestQueue": "AWS::SQS::Queue",
    "RequestDeadLetterQueue": "AWS::SQS::Queue",
    "ImageApiApiKey": "AWS::ApiGateway::ApiKey",
    "ImageApiUsagePlan": "AWS::ApiGateway::UsagePlan",
}


def test_the_stateful_resources_keep_their_logical_ids(monkeypatch):
    resources = expand(monkeypatch)

    assert {name: resources[name]["Type"] for name in STATEFUL if name in resources} == STATEFUL


def test_every_stateful_resource_is_one_whose_id_is_frozen(monkeypatch):
    """A new table, bucket, queue, secret or key must be added to STATEFUL, deliberately."""
    resources = expand(monkeypatch)
    stateful = {name for name, spec in resources.items() if spec["Type"] in set(STATEFUL.values())}

    assert stateful == set(STATEFUL)


def test_the_daily_job_caps_reach_the_api_function_and_its_settings(monkeypatch):
    """The caps the service enforces itself (zimage.jobs.quota): parameters, the API function's
    environment and Settings agree, and only the functions that count jobs (the API and the
    submit worker, which share the submit code) get them."""
    from zimage.settings import Settings

    parameters = TEMPLATE["Parameters"]
    environment = RESOURCES["ApiFunction"]["Properties"]["Environment"]["Variables"]
    resolver = Resolver(TEMPLATE, {"MaxJobsPerKeyPerDay": 5, "MaxJobsPerDay": 50})
    deployed = {name: resolver.resolve(environment[name]) for name in ("MAX_JOBS_PER_KEY_PER_DAY", "MAX_JOBS_PER_DAY")}
    for name, default in (("MaxJobsPerKeyPerDay", 1000), ("MaxJobsPerDay", 10000)):
        assert (parameters[name]["Type"], parameters[name]["Default"], parameters[name]["MinValue"]) == (
            "Number",
            default,
            0,  # 0 turns the cap off
        )
    assert environment["MAX_JOBS_PER_KEY_PER_DAY"] == {"Ref": "MaxJobsPerKeyPerDay"}
    assert environment["MAX_JOBS_PER_DAY"] == {"Ref": "MaxJobsPerDay"}
    assert (deployed["MAX_JOBS_PER_KEY_PER_DAY"], deployed["MAX_JOBS_PER_DAY"]) == (5, 50)
    for logical, spec in RESOURCES.items():
        if spec["Type"] == "AWS::Serverless::Function" and logical not in ("ApiFunction", "SubmitWorkerFunction"):
            assert not {"MAX_JOBS_PER_KEY_PER_DAY", "MAX_JOBS_PER_DAY"} & set(
                spec["Properties"].get("Environment", {}).get("Variables", {})
            ), logical

    monkeypatch.setenv("MAX_JOBS_PER_KEY_PER_DAY", "5")
    monkeypatch.setenv("MAX_JOBS_PER_DAY", "50")
    settings = Settings.from_env()
    assert (settings.max_jobs_per_key_per_day, settings.max_jobs_per_day) == (5, 50)
    monkeypatch.delenv("MAX_JOBS_PER_KEY_PER_DAY")
    monkeypatch.delenv("MAX_JOBS_PER_DAY")
    defaults = Settings.from_env()
    assert (defaults.max_jobs_per_key_per_day, defaults.max_jobs_per_day) == (1000, 10000)
