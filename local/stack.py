"""The local stack: the product's real pieces on one machine, with no AWS and no Docker.

- moto serves S3, DynamoDB, SSM, Lambda, IAM and Step Functions over HTTP on loopback, so the
  handlers use plain boto3 and a presigned URL downloads with any HTTP client;
- the state machine is the real ASL file with template.yaml's substitutions, run by moto's
  Step Functions interpreter (`execute_state_machine`);
- moto's Docker-less Lambda backend is the seam: each Lambda invoke is dispatched in-process to
  the real handler of that function, with the function's environment from template.yaml;
- an API Gateway front (local.api_gateway) turns HTTP requests into proxy events for the API
  function, and the Novita emulator (local.novita_emulator) stands in for the upstream unless
  NOVITA_BASE_URL points elsewhere.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import os
import secrets
import socket
import sys
import threading
import time
import traceback
import uuid
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.config import default_user_config
from moto.dynamodb.models import DynamoDBBackend
from moto.server import ThreadedMotoServer

from local.api_gateway import ApiGatewayFront
from local.invocations import PerThreadInvocations
from local.novita_emulator import EmulatorSettings, NovitaEmulator
from local.persistence import LocalState, end_interrupted_jobs
from local.template import ACCOUNT, REGION, ROOT, Resolver, load_template, substitute_definition
from zimage.workflow.timing import WorkflowTiming

DEV_API_KEY = "zimage-local-dev-key"

# Template parameters the local stack runs with unless told otherwise: the defaults, except
# where a laptop wants shorter.
LOCAL_PARAMETERS: dict[str, Any] = {"Stage": "dev", "LogLevel": "INFO"}
# The tests' and the reliability report's settings: short waits with production's shape (a
# deadline, a poll cap, a hard execution timeout above the deadline, upstream timeouts of a second).
QUICK_PARAMETERS = {
    "ExecutionTimeoutSeconds": 30,
    "PollTurnSeconds": 12,
    "MaxPolls": 3,
    "MinWaitSeconds": 1,
    "MaxWaitSeconds": 5,
    "FastPollWindowSeconds": 1,
    "FastPollIntervalSeconds": "0.25",
    "UpstreamReadTimeoutSeconds": 1,
    "MaxConsecutiveUpstreamErrors": 3,
    "MaxImageBytes": 1048576,
    "WebhookTimeoutSeconds": 1,
    "WebhookRetryBaseSeconds": 1,
    "WebhookMaxAttempts": 3,
    "RequestRetryBaseSeconds": 1,
    "SubmitWorkerMaxConcurrency": 3,
}
# The job's deadline the two settings above give (zimage.workflow.timing): 30 - 12 - 10 = 8 s.
QUICK_DEADLINE_SECONDS = WorkflowTiming(
    QUICK_PARAMETERS["ExecutionTimeoutSeconds"], QUICK_PARAMETERS["PollTurnSeconds"]
).poll_deadline_seconds
QUICK_EMULATOR = EmulatorSettings(queue_seconds=0.1, run_seconds=0.6)
# Settings the template cannot turn on, so that no deployment can: webhooks to loopback receivers,
# which local development and the tests use.
LOCAL_ONLY_ENVIRONMENT = {"ALLOW_LOOPBACK_WEBHOOKS": "true"}
# What the page says when the emulator stands in for Novita (settings: UPSTREAM_NOTICE).
EMULATOR_NOTICE = (
    "Local stack: the pictures come from the Novita emulator, not a model. Each is a gradient with "
    "coloured circles of the size asked for, whatever the prompt says."
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LocalContext:
    """The attributes of Lambda's context object that handlers and Powertools read."""

    function_name: str
    memory_limit_in_mb: int
    timeout_seconds: int
    invoked_function_arn: str
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


@dataclass
class LocalFunction:
    logical_id: str
    module: ModuleType
    handler: Any
    memory: int
    timeout: int
    arn: str

    def context(self) -> LocalContext:
        return LocalContext(
            function_name=self.logical_id,
            memory_limit_in_mb=self.memory,
            timeout_seconds=self.timeout,
            invoked_function_arn=self.arn,
            log_group_name=f"/aws/lambda/{self.logical_id}",
        )


class LocalStack:
    def __init__(
        self,
        *,
        api_port: int = 3000,
        api_keys: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        novita_base_url: str | None = None,
        novita_api_key: str | None = None,
        emulator_settings: EmulatorSettings | None = None,
        state: LocalState | None = None,
    ):
        self.api_port = api_port
        self.api_keys = api_keys or {DEV_API_KEY: "local-key-1"}  # key -> key id
        self.parameters = {**LOCAL_PARAMETERS, **(parameters or {})}
        self.emulator = None if novita_base_url else NovitaEmulator(settings=emulator_settings)
        self._novita_base_url = novita_base_url
        self._novita_api_key = novita_api_key
        self.moto_port = free_port()
        self.functions: dict[str, LocalFunction] = {}
        self._patches: list[Any] = []
        self._moto: ThreadedMotoServer | None = None
        self.api: ApiGatewayFront | None = None
        self.state_machine_arn = ""
        self.bucket = "zimage-local-images"
        self.event_bus = "default"
        self._pollers: list[BackgroundWorker] = []
        self.invocations: list[tuple[str, float]] = []  # (function, seconds) of every Lambda call
        self.table = "zimage-local-jobs"
        # Kept across restarts when given (make run): the data on a clean stop, the signing secret.
        self.state = state
        self.restored: tuple[int, int, list[str]] = (0, 0, [])  # items, objects, jobs interrupted

    # --- life cycle ----------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return self.api.url if self.api else f"http://127.0.0.1:{self.api_port}"

    @property
    def novita_base_url(self) -> str:
        return self._novita_base_url or self.emulator.url

    def start(self) -> LocalStack:
        self._start_moto()
        if self.emulator:
            self.emulator.start()
        template = load_template()
        resolver = Resolver(template, self.parameters)
        self._create_data_resources(template, resolver)
        self._create_messaging_resources(template, resolver)
        self._create_functions(template, resolver)
        self._create_state_machine(template, resolver)
        self._apply_function_environment(template, resolver)
        self._load_handlers(template, resolver)
        if self.state:
            self._restore_state()
        api_function = self.functions["ApiFunction"]
        self.api = ApiGatewayFront(
            template, api_function.handler, api_function.context, self.api_keys, port=self.api_port
        ).start()
        self._start_queue_pollers(template, resolver)
        self._start_schedules(template)
        return self

    def stop(self) -> None:
        for poller in self._pollers:
            poller.stop()
        if self.api:
            self.api.stop()
        if self.state_machine_arn:
            self._stop_running_executions()
        if self.state and self._moto:
            self._save_state()
        if self.emulator:
            self.emulator.stop()
        if self._moto:
            self._moto.stop()
        for patch in reversed(self._patches):
            patch.stop()
        self._patches.clear()

    def _stop_running_executions(self) -> None:
        """Executions still waiting would wake up to a stopped server and print its errors."""
        sfn = self.client("stepfunctions")
        try:
            running = sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")
            for execution in running["executions"]:
                sfn.stop_execution(executionArn=execution["executionArn"], cause="local stack stopped")
        except Exception:  # best effort: the process is ending anyway
            logging.getLogger("local.stack").debug("could not stop executions", exc_info=True)

    def _restore_state(self) -> None:
        items, objects = self.state.restore(self.client("dynamodb"), self.client("s3"), self.bucket)
        interrupted = end_interrupted_jobs(self.resource("dynamodb").Table(self.table))
        self.restored = (items, objects, interrupted)

    def _save_state(self) -> None:
        try:
            self.state.save(self.client("dynamodb"), self.client("s3"), self.bucket)
        except Exception:  # stopping goes on; the copy from the last clean stop stays
            logging.getLogger("local.stack").exception("could not save the local stack's data")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- AWS -----------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        return boto3.client(service, **self._aws_options())

    def resource(self, service: str) -> Any:
        return boto3.resource(service, **self._aws_options())

    def _aws_options(self) -> dict:
        return {
            "endpoint_url": self.endpoint,
            "region_name": REGION,
            "aws_access_key_id": "local",
            "aws_secret_access_key": "local",
        }

    def _start_moto(self) -> None:
        self._set_env(
            {
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "AWS_ENDPOINT_URL": self.endpoint,
                # moto's Step Functions interpreter calls Lambda and other services here.
                "MOTO_PORT": str(self.moto_port),
                "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon on a laptop
                # CloudWatch would read the metrics from stdout; here they only bury the logs.
                "POWERTOOLS_METRICS_DISABLED": "true",
            }
        )
        self._patches.append(
            mock.patch.dict(
                default_user_config,
                {
                    "stepfunctions": {"execute_state_machine": True},
                    "lambda": {"use_docker": False},
                },
            )
        )
        self._patches.append(mock.patch.object(LambdaSimpleBackend, "invoke", _dispatcher(self)))
        # DynamoDB applies each write, its condition included, atomically; moto's server handles
        # requests on threads and reads an item before writing it, so two concurrent conditional
        # updates (the daily caps' counters) could both pass. One lock makes its writes atomic too.
        writes = threading.Lock()
        self._patches += [
            mock.patch.object(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name), writes))
            for name in ("put_item", "update_item", "delete_item")
        ]
        for patch in self._patches[-5:]:
            patch.start()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
        _quiet_handled_workflow_failures()
        _quiet_empty_metrics_warnings()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self._moto.start()

    def _set_env(self, values: dict[str, str]) -> None:
        patch = mock.patch.dict(os.environ, values)
        patch.start()
        self._patches.append(patch)

    def _create_data_resources(self, template: dict, resolver: Resolver) -> None:
        dynamodb = self.client("dynamodb")
        for logical, spec in template["Resources"].items():
            if spec["Type"] != "AWS::DynamoDB::Table":
                continue
            table = resolver.resolve(spec["Properties"])
            name = self.table if logical == "JobsTable" else f"zimage-local-{logical}"
            options = (
                {"GlobalSecondaryIndexes": table["GlobalSecondaryIndexes"]} if "GlobalSecondaryIndexes" in table else {}
            )
            dynamodb.create_table(
                TableName=name,
                BillingMode=table["BillingMode"],
                AttributeDefinitions=table["AttributeDefinitions"],
                KeySchema=table["KeySchema"],
                **options,
            )
            if "TimeToLiveSpecification" in table:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=table["TimeToLiveSpecification"])
            resolver.refs[logical] = name

        self.client("s3").create_bucket(Bucket=self.bucket)
        resolver.refs["ImagesBucket"] = self.bucket
        resolver.attributes[("ImagesBucket", "Arn")] = f"arn:aws:s3:::{self.bucket}"

        # The emulator checks its own key; NOVITA_API_KEY is for the upstream NOVITA_BASE_URL names.
        if self.emulator:
            key = self.emulator.settings.api_key
        else:
            key = self._novita_api_key or os.environ.get("NOVITA_API_KEY") or EmulatorSettings().api_key
        name = resolver.parameters["NovitaApiKeyName"]
        if resolver.condition("KeyInSecretsManager"):
            self.client("secretsmanager").create_secret(Name=name, SecretString=key)
        else:
            self.client("ssm").put_parameter(Name=name, Value=key, Type="SecureString", Overwrite=True)
        if self._novita_base_url:
            resolver.parameters["NovitaBaseUrl"] = self._novita_base_url
        else:
            resolver.parameters["NovitaBaseUrl"] = self.emulator.url
            # The poll schedule's prior, unless one was chosen: how long the emulator's tasks take.
            if "TaskSecondsPrior" not in self.parameters:
                resolver.parameters["TaskSecondsPrior"] = str(self.emulator.settings.typical_seconds)

    def _resources(self, template: dict, resolver: Resolver, kind: str) -> dict[str, dict]:
        return {
            logical: spec
            for logical, spec in template["Resources"].items()
            if spec["Type"] == kind and ("Condition" not in spec or resolver.condition(spec["Condition"]))
        }

    def _create_messaging_resources(self, template: dict, resolver: Resolver) -> None:
        """Secrets, queues, the event bus and its rules, as the template declares them."""
        for logical in self._resources(template, resolver, "AWS::SecretsManager::Secret"):
            value = (
                self.state.webhook_secret()
                if self.state and logical == "WebhookSigningSecret"
                else secrets.token_urlsafe(36).replace("-", "a").replace("_", "b")
            )
            arn = self.client("secretsmanager").create_secret(Name=f"zimage-local-{logical}", SecretString=value)["ARN"]
            resolver.refs[logical] = arn
        sqs = self.client("sqs")
        queues = self._resources(template, resolver, "AWS::SQS::Queue")
        # Dead-letter queues first: the others name them in their redrive policy.
        for logical, spec in sorted(queues.items(), key=lambda item: "RedrivePolicy" in item[1].get("Properties", {})):
            props = resolver.resolve(spec.get("Properties", {}))
            attributes = {
                name: json.dumps(props[name]) if name == "RedrivePolicy" else str(props[name])
                for name in ("VisibilityTimeout", "MessageRetentionPeriod", "RedrivePolicy")
                if name in props
            }
            url = sqs.create_queue(QueueName=f"zimage-local-{logical}", Attributes=attributes)["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            resolver.refs[logical] = url
            resolver.attributes[(logical, "Arn")] = arn
            resolver.attributes[(logical, "QueueName")] = f"zimage-local-{logical}"
        events = self.client("events")
        for logical in self._resources(template, resolver, "AWS::Events::EventBus"):
            name = resolver.resolve(template["Resources"][logical]["Properties"])["Name"]
            events.create_event_bus(Name=name)
            resolver.refs[logical] = name
        for logical, spec in self._resources(template, resolver, "AWS::Events::Rule").items():
            props = resolver.resolve(spec["Properties"])
            name = f"zimage-local-{logical}"
            arn = events.put_rule(
                Name=name, EventBusName=props["EventBusName"], EventPattern=json.dumps(props["EventPattern"])
            )["RuleArn"]
            events.put_targets(Rule=name, EventBusName=props["EventBusName"], Targets=props["Targets"])
            resolver.refs[logical] = name
            resolver.attributes[(logical, "Arn")] = arn
        self.event_bus = resolver.resolve(
            {"Fn::If": ["CreateEventBus", {"Ref": "ImageEventBus"}, {"Ref": "EventBusName"}]}
        )

    def _start_queue_pollers(self, template: dict, resolver: Resolver) -> None:
        """Lambda's SQS event source mappings (the template's EventSourceMapping resources). moto
        runs a mapping once, when a message is sent; Lambda's service polls, honours the
        visibility timeout the function sets and lets the queue's redrive policy move a message
        to the dead-letter queue. That polling is what this thread does, against moto's real
        queues."""
        for spec in template["Resources"].values():
            if spec["Type"] != "AWS::Lambda::EventSourceMapping":
                continue
            props = resolver.resolve(spec["Properties"])
            function = spec["Properties"]["FunctionName"]["Ref"]  # the function's logical id
            # Lambda runs up to MaximumConcurrency batches of one mapping at once: a poller each.
            concurrency = int(props.get("ScalingConfig", {}).get("MaximumConcurrency", 1))
            for _ in range(concurrency):
                poller = QueuePoller(
                    self,
                    function,
                    props["EventSourceArn"],
                    int(props.get("BatchSize", 10)),
                    reports_failures="ReportBatchItemFailures" in props.get("FunctionResponseTypes", []),
                )
                self._pollers.append(poller.start())

    def _start_schedules(self, template: dict) -> None:
        """EventBridge's schedules: each function's `rate(...)` events, run on a timer thread."""
        units = {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600, "day": 86400, "days": 86400}
        for logical, spec in self._functions_in(template).items():
            for event in spec["Properties"].get("Events", {}).values():
                if event["Type"] not in ("Schedule", "ScheduleV2"):
                    continue
                amount, unit = event["Properties"]["Schedule"].removeprefix("rate(").rstrip(")").split()
                self._pollers.append(Schedule(self, logical, int(amount) * units[unit]).start())

    def _functions_in(self, template: dict) -> dict[str, dict]:
        return {
            logical: spec
            for logical, spec in template["Resources"].items()
            if spec["Type"] == "AWS::Serverless::Function"
        }

    def _create_functions(self, template: dict, resolver: Resolver) -> None:
        role = self.client("iam").create_role(
            RoleName="zimage-local-lambda",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
        )["Role"]["Arn"]
        # moto keeps the code it is given; the code that runs is the handler loaded below.
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("app.py", "# dispatched in-process by the local stack\n")
        lambda_client = self.client("lambda")
        for logical in self._functions_in(template):
            arn = lambda_client.create_function(
                FunctionName=logical,
                Runtime="python3.13",
                Role=role,
                Handler="app.lambda_handler",
                Code={"ZipFile": archive.getvalue()},
            )["FunctionArn"]
            resolver.refs[logical] = logical
            resolver.attributes[(logical, "Arn")] = arn
        self._role_arn = role

    def _create_state_machine(self, template: dict, resolver: Resolver) -> None:
        spec = template["Resources"]["ImageJobStateMachine"]["Properties"]
        definition = substitute_definition(
            (ROOT / spec["DefinitionUri"]).read_text(), resolver.resolve(spec["DefinitionSubstitutions"])
        )
        self.state_machine_arn = self.client("stepfunctions").create_state_machine(
            name="zimage-local-image-job",
            definition=definition,
            roleArn=self._role_arn,
            type=resolver.resolve(spec["Type"]),
        )["stateMachineArn"]
        resolver.refs["ImageJobStateMachine"] = self.state_machine_arn
        resolver.attributes[("ImageJobStateMachine", "Name")] = "zimage-local-image-job"

    def _apply_function_environment(self, template: dict, resolver: Resolver) -> None:
        """All handlers share this one process, so their variables share os.environ: a name
        that two functions set differently would make one of them run with the wrong value."""
        shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        merged: dict[str, str] = {k: str(v) for k, v in resolver.resolve(shared).items()}
        for logical, spec in self._functions_in(template).items():
            own = spec["Properties"].get("Environment", {}).get("Variables", {})
            for name, value in resolver.resolve(own).items():
                if name in merged and merged[name] != str(value):
                    raise ValueError(f"{logical} sets {name} differently from another function")
                merged[name] = str(value)
        notice = {"UPSTREAM_NOTICE": EMULATOR_NOTICE} if self.emulator else {}
        self._set_env({**merged, **LOCAL_ONLY_ENVIRONMENT, **notice})

    def _load_handlers(self, template: dict, resolver: Resolver) -> None:
        function_globals = template.get("Globals", {}).get("Function", {})
        for logical, spec in self._functions_in(template).items():
            props = spec["Properties"]
            module_name, handler_name = props["Handler"].rsplit(".", 1)
            code = ROOT / props["CodeUri"]
            if str(code) not in sys.path:
                sys.path.append(str(code))  # Lambda puts the function's own folder on the path
            path = code / f"{module_name}.py"
            loaded = importlib.util.spec_from_file_location(f"zimage_function_{logical}", path)
            module = importlib.util.module_from_spec(loaded)
            loaded.loader.exec_module(module)
            self.functions[logical] = LocalFunction(
                logical_id=logical,
                module=module,
                handler=getattr(module, handler_name),
                memory=int(resolver.resolve(props.get("MemorySize", function_globals.get("MemorySize", 128)))),
                timeout=int(resolver.resolve(props.get("Timeout", function_globals.get("Timeout", 3)))),
                arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical}",
            )
        self._patches.extend(ThreadLogKeys.install())
        self._patches.append(PerThreadInvocations().start())
        from zimage.runtime import shared_runtime

        shared_runtime().warm()

    def invoke(self, function_name: str, payload: bytes | str | None) -> tuple[bytes, str | None]:
        """Run the named function's real handler; the answer is (payload, function error)."""
        logical = function_name.split(":function:")[-1].split(":")[0]
        function = self.functions[logical]
        event = json.loads(payload or "{}")
        context = function.context()
        try:
            result = function.handler(event, context)
        except Exception as exc:  # Lambda reports an unhandled error this way
            self.invocations.append((logical, time.monotonic() - context.started))
            report = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            return json.dumps(report).encode(), "Unhandled"
        elapsed = time.monotonic() - context.started
        self.invocations.append((logical, elapsed))
        if elapsed > function.timeout:
            report = {"errorType": "Sandbox.Timedout", "errorMessage": f"Task timed out after {elapsed:.2f} seconds"}
            return json.dumps(report).encode(), "Unhandled"
        return json.dumps(result).encode(), None

    # --- conveniences for tests, the demo and the benchmark ------------------------------

    def add_function(self, logical: str, path: Path, *, memory: int = 128, timeout: int = 30) -> str:
        """Register one more function (not in the template), dispatched like the others."""
        spec = importlib.util.spec_from_file_location(f"zimage_function_{logical}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w") as zipped:
            zipped.writestr("app.py", "# dispatched in-process by the local stack\n")
        arn = self.client("lambda").create_function(
            FunctionName=logical,
            Runtime="python3.13",
            Role=self._role_arn,
            Handler="app.lambda_handler",
            Code={"ZipFile": archive.getvalue()},
            MemorySize=memory,
        )["FunctionArn"]
        self.functions[logical] = LocalFunction(logical, module, module.lambda_handler, memory, timeout, arn)
        return arn

    def create_state_machine(self, name: str, definition: str) -> str:
        return self.client("stepfunctions").create_state_machine(
            name=name, definition=definition, roleArn=self._role_arn, type="STANDARD"
        )["stateMachineArn"]

    def wait_until_idle(self, timeout: float = 20) -> bool:
        """Wait until no execution is running (tests call it so one test's jobs never act
        during the next one); False if some still run after `timeout`."""
        sfn = self.client("stepfunctions")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            running = sfn.list_executions(stateMachineArn=self.state_machine_arn, statusFilter="RUNNING")
            if not running["executions"]:
                return True
            time.sleep(0.1)
        return False

    def finished_execution(self, job_id: str, timeout: float = 20) -> dict:
        """The job's execution once it has ended (a job's record ends a few states earlier)."""
        deadline = time.monotonic() + timeout
        execution = self.execution_for(job_id)
        while execution["status"] == "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
            execution = self.execution_for(job_id)
        return execution

    def execution_arn(self, job_id: str, state_machine_arn: str | None = None) -> str:
        from zimage.api.submit import execution_arn_for  # the layer is on the path once started

        return execution_arn_for(state_machine_arn or self.state_machine_arn, job_id)

    def execution_for(self, job_id: str) -> dict:
        return self.client("stepfunctions").describe_execution(executionArn=self.execution_arn(job_id))

    def history_for(self, job_id: str) -> list[dict]:
        return self.client("stepfunctions").get_execution_history(executionArn=self.execution_arn(job_id))["events"]


class BackgroundWorker:
    """A daemon thread the stack starts with itself and stops with itself."""

    def __init__(self, stack: LocalStack, function: str, name: str):
        self.stack, self.function = stack, function
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-{function}", daemon=True)

    def start(self) -> BackgroundWorker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        raise NotImplementedError


class Schedule(BackgroundWorker):
    def __init__(self, stack: LocalStack, function: str, every_seconds: int):
        super().__init__(stack, function, "schedule")
        self.every = every_seconds

    def _run(self) -> None:
        while not self._stopped.wait(self.every):
            self.stack.invoke(self.function, json.dumps({"source": "aws.scheduler", "detail-type": "Scheduled Event"}))


class QueuePoller(BackgroundWorker):
    def __init__(
        self, stack: LocalStack, function: str, queue_arn: str, batch_size: int, *, reports_failures: bool = False
    ):
        super().__init__(stack, function, "sqs-poller")
        self.queue_arn, self.batch_size = queue_arn, batch_size
        # With ReportBatchItemFailures, Lambda deletes the batch but the messages the answer
        # names; without it, the answer is ignored and a returned batch counts as done.
        self.reports_failures = reports_failures

    def _run(self) -> None:
        sqs = self.stack.client("sqs")
        url = sqs.get_queue_url(QueueName=self.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        while not self._stopped.is_set():
            try:
                self._poll_once(sqs, url)
            except Exception:  # keep polling, as Lambda's poller does; the error is logged
                if not self._stopped.is_set():
                    logging.getLogger("local.stack").exception("SQS poller failed")
                    self._stopped.wait(1)

    def _poll_once(self, sqs: Any, url: str) -> None:
        received = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=self.batch_size, WaitTimeSeconds=1, AttributeNames=["All"]
        ).get("Messages", [])
        if not received:
            return
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m["MD5OfBody"],
                "eventSource": "aws:sqs",
                "eventSourceARN": self.queue_arn,
                "awsRegion": REGION,
            }
            for m in received
        ]
        payload, error = self.stack.invoke(self.function, json.dumps({"Records": records}))
        if error:
            return  # the whole batch returns to the queue when its visibility ends
        answer = json.loads(payload) if self.reports_failures else None
        failed = {item["itemIdentifier"] for item in (answer or {}).get("batchItemFailures", [])}
        for message in received:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _dispatcher(stack: LocalStack) -> Any:
    def invoke(
        backend: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: dict
    ) -> bytes:
        payload, error = stack.invoke(function_name, body)
        if error:
            response_headers["x-amz-function-error"] = error
        return payload

    return invoke


class ThreadLogKeys(LambdaPowertoolsFormatter):
    """A Powertools formatter whose keys belong to the thread that set them.

    Every function's `Logger()` is the same logging.Logger (named after POWERTOOLS_SERVICE_NAME),
    with one handler and one formatter, and `inject_lambda_context` puts the invocation's keys
    (function_name, request id, correlation id...) on that formatter. On AWS a process runs one
    function, one invocation at a time; here each invocation runs on a thread of its own, so
    without this the last one to start would name itself in every other's lines."""

    _template: dict
    _threads: threading.local

    @property
    def log_format(self) -> dict:
        keys = getattr(self._threads, "keys", None)
        if keys is None:  # a thread's first line: the keys the logger was configured with
            keys = self._threads.keys = dict(self._template)
        return keys

    @log_format.setter
    def log_format(self, keys: dict) -> None:
        self._threads.keys = keys

    @classmethod
    def install(cls) -> list[Restore]:
        """Put one in place of each Powertools logger's formatter; each Restore puts it back."""
        restores = []
        for logger in list(logging.Logger.manager.loggerDict.values()):
            handler = getattr(logger, "powertools_handler", None)
            shared = getattr(handler, "formatter", None)
            if type(shared) is not LambdaPowertoolsFormatter:  # already replaced, or not Powertools'
                continue
            per_thread = cls.__new__(cls)
            per_thread.__dict__.update(shared.__dict__)
            per_thread._template = per_thread.__dict__.pop("log_format")
            per_thread._threads = threading.local()
            per_thread.update_formatter = per_thread.append_keys  # the alias was bound to `shared`
            handler.setFormatter(per_thread)
            restores.append(Restore(handler.setFormatter, shared))
        return restores


@dataclass
class Restore:
    """One undo in the stack's list of patches: `stop()` calls `undo(value)`."""

    undo: Any
    value: Any

    def stop(self) -> None:
        self.undo(self.value)


def _quiet_empty_metrics_warnings() -> None:
    """Metrics are off here (POWERTOOLS_METRICS_DISABLED), yet Powertools warns "No application
    metrics to publish" after an invocation that added none (a GET, say): a UserWarning in
    `make run`'s output. Only that warning, and only from Powertools' metrics."""
    warnings.filterwarnings(
        "ignore",
        message="No application metrics to publish",
        category=UserWarning,
        module=r"aws_lambda_powertools\.metrics\.",
    )


def _serialized(method: Any, lock: threading.Lock) -> Any:
    def serialized(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return serialized


def _unless_a_handled_failure(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Exception=FailureEventException")


def _quiet_handled_workflow_failures() -> None:
    """moto's ASL interpreter logs every error a state raises, at each state it passes through,
    as an ERROR with the whole state's text, even when a Catch or the failure path handles it:
    a dump per failed job in `make run`. The execution history keeps those; other exceptions
    (a fault of the interpreter or the definition) are still logged."""
    interpreter = logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component")
    if _unless_a_handled_failure not in interpreter.filters:
        interpreter.addFilter(_unless_a_handled_failure)
