"""`make bench`: the service's polling policy against a Job Poller baseline, side by side, on
the local stack with the Novita emulator; writes bench/results.json and docs/performance.md.

Both policies run the same code for everything but the polling: the same submit, the same
storing, the same job record. The baseline differs only where the AWS Step Functions Job Poller
sample does: a fixed 5 s Wait before every single status check.
"""

from __future__ import annotations

import gc
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import cache
from io import BytesIO
from pathlib import Path

import urllib3

from local.layer_build import build_shared_layer
from local.novita_emulator import EmulatorSettings
from local.stack import DEV_API_KEY, LocalStack
from local.template import ROOT, Resolver, load_template, substitute_definition
from reliability.scenarios import run_load
from zimage.jobs.durations import KEPT_ETA_VERDICTS
from zimage.jobs.store import BLIND_READ_SECONDS
from zimage.workflow.timing import WorkflowTiming

RESULTS = ROOT / "bench" / "results.json"
# Each upstream task takes a time drawn from its prompt and seed: most of them uniformly from
# TYPICAL_SECONDS (one model at one size takes about the same time), OUTLIER_SHARE of them
# uniformly from OUTLIER_SECONDS, slower, never faster (a queue, a cold worker).
TYPICAL_SECONDS = (3.5, 4.5)
OUTLIER_SHARE = 0.15
OUTLIER_SECONDS = (5.0, 10.0)
QUEUE_SECONDS = 0.2  # each task is queued this long before it runs
# The upstream's eta, per mode: exact, absent (eta and progress stay 0), or a quarter or three
# times the truth (local/novita_emulator.py).
MODES = ("truthful", "none", "misleading")
JOBS_PER_POLICY = 24
# Before each mode, unmeasured: enough jobs to fill the poll function's verdicts on the upstream's
# etas, so that each mode is measured once the service knows that upstream, whatever came before.
# Twice as many as it keeps, since an eta is judged only when the answers around the task's end
# are close enough to tell (schedule.eta_verdict).
WARM_UP_JOBS = 2 * KEPT_ETA_VERDICTS
# Jobs arrive one every this many seconds, as clients' requests do, rather than in one burst: all
# of the local stack shares one interpreter, so 24 submits in the same instant queue behind one
# another for seconds, and a job would be measured waiting for the machine, not for the policy.
# The 200-job load run is the burst.
ARRIVAL_INTERVAL_SECONDS = 0.25
DELIVERY_JOBS = 12  # per way of delivering the image: URL download, base64 in the task result
BASELINE_MEMORY_MB = 128  # the Job Poller sample's functions use Lambda's default
# The baseline's Standard workflow keeps its own long timeout; only the job's deadline is read.
BASELINE_TIMING = WorkflowTiming(execution_timeout_seconds=3600, poll_turn_seconds=60)
# The load run's tasks last longer than its 200 submits take to arrive (the local stack accepts a
# few a second), so that all 200 jobs are in flight together.
LOAD_RUN_SECONDS = 75.0

# us-east-1 list prices (USD); the upstream's own price is left out.
PRICES_AS_OF = "2025-11-01"
# The requests every image needs whatever follows its job, per image, as measured before the
# poll schedule learned (bench/results.json at de654d4): the POST and one GET, the S3 PUT and
# the client's download, the job's DynamoDB writes and reads, and its completion event (which
# that count missed). Frozen, so that calls a schedule adds count against it, not the floor.
FLOOR_REQUESTS_PER_IMAGE = {
    "apigw_rest_request": 2,
    "s3_put": 1,
    "s3_get": 1,
    "dynamodb_write": 5.62,
    "dynamodb_read": 2,
    "eventbridge_event": 1,
}
# The CLI before this schedule read the job every this many seconds.
OLD_CLI_INTERVAL_SECONDS = 0.5
# The old `Prefer: wait` re-read the job this many times a second while it held the answer.
OLD_WAITER_READS_PER_SECOND = 4
API_MEMORY_MB = 256  # the API function's, which a held `Prefer: wait` read keeps running
# A webhook's delivery: the rule's SQS message sent, received and deleted, and one call of the
# 128 MB sender taking this long (its POST to the receiver), on top of the event every job sends.
WEBHOOK_DELIVERY_SECONDS = 0.2
SQS_REQUESTS_PER_MESSAGE = 3
PRICES = {
    "sfn_standard_transition": 0.025 / 1000,
    "sfn_express_request": 1.00 / 1_000_000,
    "sfn_express_gb_second": 0.00001667,  # billed per 100 ms, 64 MB at the least
    "lambda_request": 0.20 / 1_000_000,
    "lambda_gb_second_arm": 0.0000133334,
    "apigw_rest_request": 3.50 / 1_000_000,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "dynamodb_write": 0.625 / 1_000_000,
    "dynamodb_read": 0.125 / 1_000_000,
    "eventbridge_event": 1.00 / 1_000_000,
    "sqs_request": 0.40 / 1_000_000,
}
WRITES = {"PutItem", "UpdateItem", "DeleteItem"}
READS = {"GetItem", "Query"}


class CallCounter:
    """Counts the functions' AWS calls by operation, at the SDK's boundary."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def attach(self, client: object) -> None:
        client.meta.events.register("before-call", self._count, unique_id="bench-counter")

    def _count(self, model: object, **_: object) -> None:
        with self._lock:
            self.counts[model.name] += 1

    def take(self) -> Counter[str]:
        with self._lock:
            taken, self.counts = self.counts, Counter()
        return taken


class ApiCalls:
    """The API function's calls as the local API Gateway makes them: method and seconds each
    (the local stack hands them to the handler directly, outside its own invocation list)."""

    def __init__(self, stack: LocalStack) -> None:
        self.calls: list[tuple[str, float]] = []
        self._lock = threading.Lock()
        handler = stack.api.handler

        def timed(event: dict, context: object) -> dict:
            started = time.monotonic()
            try:
                return handler(event, context)
            finally:
                with self._lock:
                    self.calls.append((event.get("httpMethod", ""), time.monotonic() - started))

        stack.api.handler = timed

    def take(self) -> list[tuple[str, float]]:
        with self._lock:
            taken, self.calls = self.calls, []
        return taken


def run(
    stack: LocalStack,
    policy: str,
    baseline_arn: str,
    jobs: int = JOBS_PER_POLICY,
    *,
    size: str = "512*512",
    base64_output: bool = False,
    prompt: str = "bench fox",
) -> dict:
    """Run `jobs` jobs under one policy, arriving at a steady rate; measure each job. The service's jobs go through
    the HTTP API and are followed as the CLI follows them, unless they ask the upstream for base64 output (a
    deployment setting, so the bench hands those to the service's workflow with the same submit code)."""
    from zimage_cli.client import ImageApi

    from zimage.api.submit import SubmitDependencies, submit_job
    from zimage.clock import epoch_seconds
    from zimage.jobs.store import JobStore
    from zimage.runtime import shared_runtime

    runtime = shared_runtime()
    http = urllib3.PoolManager(maxsize=JOBS_PER_POLICY, retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    headers = {"x-api-key": DEV_API_KEY, "Content-Type": "application/json"}
    stack.invocations.clear()
    API_CALLS.take()
    through_api = policy == "service" and not base64_output
    # One interpreter holds the whole stack: moto's state for every AWS service, the emulator and
    # every function. A full collection of that heap stopped them all for most of a second, which
    # no Lambda, with its own small heap, ever sees: what the stack holds already is frozen out of
    # the collector before each run.
    gc.collect()
    gc.freeze()

    first_arrival = time.monotonic()

    def start(n: int) -> dict:
        """Submit job n; a job through the API is followed by the CLI's own code until it ends."""
        time.sleep(max(0.0, first_arrival + n * ARRIVAL_INTERVAL_SECONDS - time.monotonic()))
        body = {"prompt": f"{prompt} {n}", "size": size, "seed": n}
        if through_api:  # as a client: the POST, then the CLI's way of following
            answer = http.request("POST", f"{stack.api_url}/v1/images", body=json.dumps(body), headers=headers)
            accepted, accepted_at = answer.json(), time.time()
            assert answer.status == 202, accepted
            client = ImageApi(stack.api_url, DEV_API_KEY)
            reads = Counter()
            get = client.get

            def counted_get(job_id: str, **kwargs: object) -> dict:
                reads["get"] += 1  # each read the client makes, to price the way it follows
                return get(job_id, **kwargs)

            client.get = counted_get
            image_ready = client.image_ready

            def counted_look(url: str) -> bool:
                reads["look"] += 1  # each look at where the image will be: an S3 GET
                return image_ready(url)

            client.image_ready = counted_look
            job = client.follow(accepted, timeout=120)
            seen_at = time.time()
            assert job["status"] == "succeeded", job
            assert urllib3.request("GET", job["image"]["url"]).status == 200, job
            return {
                "id": accepted["id"],
                "accepted_at": accepted_at,
                "seen_at": seen_at,
                "reads": reads["get"],
                "looks": reads["look"],
            }
        from zimage.api.request import CreateImageRequest

        deps = SubmitDependencies.from_runtime(runtime)._replace(
            quota=None, retention_days=1, base64_output=base64_output
        )
        if policy == "baseline":
            deps = deps._replace(state_machine_arn=baseline_arn, timing=BASELINE_TIMING, workflow_type="STANDARD")
        # the same submit, handing the job to the chosen workflow
        job = submit_job(CreateImageRequest.model_validate(body), owner="key-one", deps=deps)
        return {"id": job.job_id}

    with ThreadPoolExecutor(jobs) as pool:
        started = list(pool.map(start, range(jobs)))
    ids = [job["id"] for job in started]
    # The harness reads through its own client, so its reads are not counted as the service's.
    harness = JobStore(stack.resource("dynamodb").Table(stack.table))
    deadline, unfinished = time.monotonic() + 120, set(ids)
    while unfinished and time.monotonic() < deadline:
        # Only the unfinished ones: the harness shares the machine with what it measures.
        unfinished = {job_id for job_id in unfinished if not harness.get(job_id).is_terminal}
        time.sleep(0.5)
    stack.wait_until_idle(timeout=60)

    overheads, transitions, durations, polls, tasks, followed, latencies = [], [], [], [], [], [], []
    events = 0
    for job_id, submitted in zip(ids, started, strict=True):
        job = harness.get(job_id)
        task = stack.emulator.tasks[job.task_id]
        ended = stack.emulator.finished_at(job.task_id)
        completed = epoch_seconds(job.completed_at)
        overheads.append(completed - ended)
        polls.append(task.polls)
        tasks.append(ended - task.created_wall)
        arn = stack.execution_arn(job_id, baseline_arn if policy == "baseline" else None)
        history = stack.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
        described = stack.client("stepfunctions").describe_execution(executionArn=arn)
        durations.append((described["stopDate"] - described["startDate"]).total_seconds())
        transitions.append(sum(event["type"].endswith("StateEntered") for event in history))
        # The workflow's PutEvents go through Step Functions itself, not the functions' clients.
        events += sum(
            event.get("stateEnteredEventDetails", {}).get("name", "").startswith("Announce") for event in history
        )
        if through_api:
            followed.append(completed - submitted["accepted_at"])
            latencies.append(submitted["seen_at"] - completed)
        else:  # readable through GET: the presigned URL downloads
            view = http.request("GET", f"{stack.api_url}/v1/images/{job_id}", headers=headers).json()
            assert urllib3.request("GET", view["image"]["url"]).status == 200, view
    aws_calls = COUNTER.take()  # with the API's reads for those GETs, which are this run's
    api_calls = API_CALLS.take()
    memory = {name: function.memory for name, function in stack.functions.items()}
    gb_seconds = sum(seconds * memory[name] / 1024 for name, seconds in stack.invocations if name != "ApiFunction")
    invocations = sum(1 for name, _ in stack.invocations if name != "ApiFunction")
    gets = [seconds for method, seconds in api_calls if method == "GET"]
    measured = {
        "jobs": len(ids),
        "overheads": overheads,
        "transitions": transitions,
        "durations": durations,
        "upstream_polls": polls,
        "task_seconds": tasks,
        "lambda_invocations": invocations,
        "lambda_gb_seconds": gb_seconds,
        "aws_calls": {**aws_calls, "PutEvents": aws_calls.get("PutEvents", 0) + events},
        "gets_seconds": gets,
    }
    if through_api:
        measured["following"] = {
            "api_requests": len(api_calls),
            "get_seconds": sum(gets),
            "reads": sum(submitted["reads"] for submitted in started),
            "looks": sum(submitted["looks"] for submitted in started),
            "followed_seconds": followed,
            "latencies": latencies,
        }
    return measured


def workflow_cost(measured: dict, workflow: str) -> float:
    """Standard bills state transitions; Express bills requests and duration (64 MB, 100 ms steps)."""
    if workflow == "STANDARD":
        return sum(measured["transitions"]) * PRICES["sfn_standard_transition"]
    billed = sum(math.ceil(seconds * 10) / 10 for seconds in measured["durations"])
    return (
        len(measured["durations"]) * PRICES["sfn_express_request"] + billed * 0.0625 * PRICES["sfn_express_gb_second"]
    )


def orchestration_cost_per_image(measured: dict, workflow: str) -> float:
    """The part polling decides: the workflow and the Lambda time; the rest is the same for any poller."""
    lambda_cost = (
        measured["lambda_invocations"] * PRICES["lambda_request"]
        + measured["lambda_gb_seconds"] * PRICES["lambda_gb_second_arm"]
    )
    return (workflow_cost(measured, workflow) + lambda_cost) / measured["jobs"]


def floor_fixed_cost_per_image() -> float:
    """What every image pays whatever follows its job (FLOOR_REQUESTS_PER_IMAGE)."""
    return sum(count * PRICES[item] for item, count in FLOOR_REQUESTS_PER_IMAGE.items())


def least_express_cost_per_image(mean_task_seconds: float) -> float:
    """The least any Express loop could cost per image with the requests every image makes: its
    start and its life through the upstream's mean task, and no Lambda call at all."""
    return (
        floor_fixed_cost_per_image()
        + PRICES["sfn_express_request"]
        + mean_task_seconds * 0.0625 * PRICES["sfn_express_gb_second"]
    )


def api_cost(measured: dict) -> float:
    """The API's share of a run: with a measured way of following, its requests (the POST and each
    read), the reads' Lambda calls and the client's looks at where the image will be (S3 GETs);
    without, the POST and one GET that finds the job done."""
    following = measured.get("following")
    if following is None:
        return measured["jobs"] * 2 * PRICES["apigw_rest_request"]
    reads = following["api_requests"] - measured["jobs"]
    return (
        following["api_requests"] * PRICES["apigw_rest_request"]
        + reads * PRICES["lambda_request"]
        + following["get_seconds"] * API_MEMORY_MB / 1024 * PRICES["lambda_gb_second_arm"]
        + following.get("looks", 0) * PRICES["s3_get"]
    )


def cost_per_image(measured: dict, workflow: str) -> float:
    jobs = measured["jobs"]
    calls = measured["aws_calls"]
    total = (
        workflow_cost(measured, workflow)
        + measured["lambda_invocations"] * PRICES["lambda_request"]
        + measured["lambda_gb_seconds"] * PRICES["lambda_gb_second_arm"]
        + api_cost(measured)
        + calls.get("PutObject", 0) * PRICES["s3_put"]
        + jobs * PRICES["s3_get"]  # the client's download
        + sum(n for op, n in calls.items() if op in WRITES) * PRICES["dynamodb_write"]
        + sum(n for op, n in calls.items() if op in READS) * PRICES["dynamodb_read"]
        + calls.get("PutEvents", 0) * PRICES["eventbridge_event"]
    )
    return total / jobs


def following_costs(measured: dict, read_seconds: float) -> dict:
    """What following one job costs each way, per job, from this run's jobs: from the POST's
    answer to the job's record saying it ended. `read_seconds` is one read the service does not
    hold. The event every job sends is in every image's bill, so it is not counted here."""
    following = measured["following"]
    jobs = measured["jobs"]
    gb_second = API_MEMORY_MB / 1024 * PRICES["lambda_gb_second_arm"]
    call = PRICES["apigw_rest_request"] + PRICES["lambda_request"]
    one_read = call + read_seconds * gb_second + PRICES["dynamodb_read"]
    followed = following["followed_seconds"]
    held = sum(followed)
    polled_reads = sum(1 + math.ceil(seconds / OLD_CLI_INTERVAL_SECONDS) for seconds in followed)
    api_reads = max(0, measured["aws_calls"].get("GetItem", 0) - jobs)  # less the POST's own read
    return {
        "get_every_half_second": polled_reads * one_read / jobs,
        "prefer_wait_rereading": (
            jobs * call + held * gb_second + (held * OLD_WAITER_READS_PER_SECOND + jobs) * PRICES["dynamodb_read"]
        )
        / jobs,
        # a read a second until the expected end (zimage.jobs.store.BLIND_READ_SECONDS), a few after
        "prefer_wait_lean": (
            jobs * call + held * gb_second + (held / BLIND_READ_SECONDS + 3 * jobs) * PRICES["dynamodb_read"]
        )
        / jobs,
        "cli": (api_cost(measured) - jobs * PRICES["apigw_rest_request"] + api_reads * PRICES["dynamodb_read"]) / jobs,
        "webhook": SQS_REQUESTS_PER_MESSAGE * PRICES["sqs_request"]
        + PRICES["lambda_request"]
        + WEBHOOK_DELIVERY_SECONDS * 128 / 1024 * PRICES["lambda_gb_second_arm"],
        "eventbridge": 0.0,
    }


def mode_results(measured: dict, workflow: str, read_seconds: float) -> dict:
    """One upstream mode's figures, as bench/results.json keeps them."""
    mean_task = statistics.mean(measured["task_seconds"])
    cost = cost_per_image(measured, workflow)
    floor = least_express_cost_per_image(mean_task)
    following = measured["following"]
    jobs = measured["jobs"]
    return {
        "overhead_s": {"p50": _percentile(measured["overheads"], 50), "p95": _percentile(measured["overheads"], 95)},
        "upstream_polls_per_job": {
            "mean": round(statistics.mean(measured["upstream_polls"]), 2),
            "max": max(measured["upstream_polls"]),
        },
        "transitions_per_job": round(statistics.mean(measured["transitions"]), 2),
        "lambda_gb_seconds_per_job": round(measured["lambda_gb_seconds"] / jobs, 3),
        "mean_task_s": round(mean_task, 2),
        "cost_per_image_usd": {
            "as_the_cli_follows": round(cost, 8),
            "least_possible_express": round(floor, 8),
            "ratio_to_least": round(cost / floor, 3),
            "same_runs_as_standard": round(cost_per_image(measured, "STANDARD"), 8),
            "orchestration": round(orchestration_cost_per_image(measured, workflow), 8),
        },
        "following_usd_per_job": {
            name: round(value, 9) for name, value in following_costs(measured, read_seconds).items()
        },
        "cli": {
            "reads_per_job": round(following["reads"] / jobs, 2),
            "looks_per_job": round(following.get("looks", 0) / jobs, 2),
            "held_seconds_per_job": round(following["get_seconds"] / jobs, 3),
            "sees_it_p50_s": _percentile(following["latencies"], 50),
            "sees_it_p95_s": _percentile(following["latencies"], 95),
        },
        "aws_calls_per_job": {k: round(v / jobs, 2) for k, v in sorted(measured["aws_calls"].items())},
    }


# What every function does before its own code: boto3, and Powertools' Logger, Metrics and
# Tracer (with the X-Ray SDK) as the handlers make them.
POWERTOOLS_FLOOR = (
    "import boto3; from aws_lambda_powertools import Logger, Metrics, Tracer; "
    "Logger(); Metrics(); Tracer(patch_modules=('botocore',))"
)
# What issue 3's API needs before any of its routes: the floor above, plus Powertools' REST event
# handler with request validation (pydantic) and Idempotency with its DynamoDB store.
API_FLOOR = (
    f"{POWERTOOLS_FLOOR}; from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
    "APIGatewayRestResolver(enable_validation=True); "
    "from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer"
)
COLD_IMPORT_RUNS = 31


@cache  # read once per function, not once per measured run
def _literal_environment(folder: Path) -> dict[str, str]:
    """The variables template.yaml gives the function in `folder` as plain values (those made by
    intrinsic functions name resources, which imports never read)."""
    template = load_template()
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and properties.get("CodeUri", "").rstrip("/") == (
            f"functions/{folder.name}"
        ):
            variables.update(properties.get("Environment", {}).get("Variables", {}))
    return {name: value for name, value in variables.items() if isinstance(value, str)}


def _lambda_environment(folder: Path | None, layer: Path | None) -> dict[str, str]:
    """The variables a function's interpreter has: the template's plain ones, and the ones Lambda
    sets. Without LAMBDA_TASK_ROOT the X-Ray SDK believes it runs on a server and builds two X-Ray
    API clients for its sampler at import, which Lambda never does."""
    env = {
        **os.environ,
        **(_literal_environment(folder) if folder else {}),
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "LAMBDA_TASK_ROOT": str(folder or ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": folder.name if folder else "measure",
        "POWERTOOLS_SERVICE_NAME": "zimage",
        "PYTHONPATH": os.pathsep.join(str(path) for path in (folder, layer) if path),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    return env


def _seconds_to_import(code: str, folder: Path | None, layer: Path | None = None) -> float:
    """A fresh interpreter running `code` from a function's folder with the shared layer as built
    (its bytecode included)."""
    out = subprocess.run(  # noqa: S603 - our own interpreter on our own code
        [sys.executable, "-c", f"import time; t = time.perf_counter(); {code}; print(time.perf_counter() - t)"],
        env=_lambda_environment(folder, layer),
        capture_output=True,
        text=True,
        check=True,
        cwd=folder or ROOT,
    )
    return float(out.stdout.strip().splitlines()[-1])


def _ratio_to_boto3(code: str, folder: Path | None = None, layer: Path | None = None) -> float:
    """`code` over boto3 alone, run one after the other so that a busy moment of the machine hits
    both, and in the same environment: in Lambda boto3 too is looked up past the function's folder
    and the layers (2% more instructions than with no path of ours)."""
    return _seconds_to_import(code, folder, layer) / _seconds_to_import("import boto3", folder, layer)


def _median_and_quartiles(samples: dict[str, list[float]]) -> tuple[dict, dict]:
    medians = {name: round(statistics.median(values), 2) for name, values in samples.items()}
    quartiles = {
        name: [round(q, 2) for q in statistics.quantiles(values, n=4, method="inclusive")[::2]]
        for name, values in samples.items()
    }
    return medians, quartiles


def _instructions(code: str, folder: Path | None, layer: Path | None) -> int:
    """Instructions a fresh interpreter executes to run `code`, counted by valgrind's callgrind,
    with a fixed hash seed: the same count run after run (to a few in a million), whatever else
    the machine does, where its seconds move the ratio by more than 0.1 from one run to the next."""
    out = subprocess.run(  # noqa: S603 - valgrind on our own interpreter and code
        [
            *("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"),
            *(sys.executable, "-c", code),
        ],
        env={**_lambda_environment(folder, layer), "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
        cwd=folder or ROOT,
    )
    collected = [line for line in out.stderr.splitlines() if "Collected :" in line]
    return int(collected[-1].rsplit(":", 1)[1].replace(",", ""))


Import = tuple[str, Path | None, Path | None]  # code, the function's folder, the layer


def _imports_measured(layer: Path, functions: list[Path]) -> dict[str, Import]:
    """What the cold-start figures compare with boto3: each handler module, and the two floors."""
    measured = {"floor": (POWERTOOLS_FLOOR, None, None), "api_floor": (API_FLOOR, None, None)}
    measured.update({folder.name: ("import app", folder, layer) for folder in functions})
    return measured


def instruction_ratios(layer: Path, functions: list[Path]) -> dict[str, float] | None:
    """Each import over boto3's in the same environment, both counted in instructions above the
    interpreter's own start; None where valgrind is not installed."""
    if shutil.which("valgrind") is None:
        return None
    measured = _imports_measured(layer, functions)
    # boto3 and the bare start are counted once per environment: the two floors share theirs.
    runs = list(
        {
            run
            for code, folder, path in measured.values()
            for run in ((code, folder, path), ("import boto3", folder, path), ("pass", folder, path))
        }
    )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        counted = dict(zip(runs, pool.map(lambda run: _instructions(*run), runs), strict=True))
    ratios = {}
    for name, (code, folder, path) in measured.items():
        start = counted[("pass", folder, path)]
        ratios[name] = round(
            (counted[(code, folder, path)] - start) / (counted[("import boto3", folder, path)] - start), 3
        )
    return ratios


def cold_import_ratios(layer: Path, functions: list[Path]) -> dict[str, list[float]]:
    """Timed ratios, in rounds that measure every import once each, so that a slow spell of the
    machine spreads over all of them instead of landing on one."""
    measured = _imports_measured(layer, functions)
    ratios: dict[str, list[float]] = {name: [] for name in measured}
    for _ in range(COLD_IMPORT_RUNS):
        for name, run in measured.items():
            ratios[name].append(_ratio_to_boto3(*run))
    return ratios


def _function_package(folder: Path, into: Path) -> Path:
    """A function as `sam build` packs it: its folder and its own requirements (Powertools and
    boto3 come from the public layer and the runtime)."""
    package = into / folder.name
    shutil.copytree(folder, package, ignore=shutil.ignore_patterns("__pycache__"))
    requirements = folder / "requirements.txt"
    if any(line.split("#")[0].strip() for line in requirements.read_text().splitlines()):
        subprocess.run(  # noqa: S603 - pip with our own requirements file
            [
                *(sys.executable, "-m", "pip", "install", "--quiet", "--no-compile", "--target", str(package)),
                *("--requirement", str(requirements), "--only-binary=:all:", "--implementation", "cp"),
                *("--platform", "manylinux2014_aarch64", "--python-version", "3.13"),
            ],
            check=True,
        )
    return package


def _compile_milliseconds(files: list[Path]) -> float:
    """What compiling these sources costs, as a cold start pays it for files without bytecode."""
    started = time.perf_counter()
    for file in files:
        compile(file.read_bytes(), str(file), "exec")
    return round((time.perf_counter() - started) * 1000, 1)


def package_megabytes(layer: Path, packages: dict[str, Path]) -> dict:
    """Zipped size of each function's package and of the shared layer as their builds made them."""

    def zipped(base: Path) -> float:
        buffer = BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in base.rglob("*"):
                if file.is_file() and (base.name == "python" or "__pycache__" not in file.parts):
                    archive.write(file, file.relative_to(base.parent))
        return round(len(buffer.getvalue()) / 1_000_000, 3)

    sizes = {name: zipped(package) for name, package in packages.items()}
    sizes["shared_layer"] = zipped(layer)
    return sizes


def _measure_deployables() -> dict:
    """Cold imports and sizes of what `sam build` would deploy: the functions' folders and the
    shared layer as its own build makes it, bytecode included."""
    with tempfile.TemporaryDirectory() as artifacts:
        build_shared_layer(Path(artifacts) / "layer").check_returncode()
        layer = Path(artifacts) / "layer" / "python"
        functions = sorted(folder for folder in (ROOT / "functions").iterdir() if (folder / "app.py").exists())
        packages = {folder.name: _function_package(folder, Path(artifacts)) for folder in functions}
        ratios, spread = _median_and_quartiles(cold_import_ratios(layer, functions))
        instructions = instruction_ratios(layer, functions) or {}
        floors = {
            name: {"seconds": ratios.pop(name), "instructions": instructions.pop(name, None)}
            for name in ("floor", "api_floor")
        }
        spread = {name: quartiles for name, quartiles in spread.items() if name not in floors}
        return {
            "cold_import_ratio": ratios,
            "cold_import_ratio_quartiles": spread,
            "cold_import_instruction_ratio": instructions or None,
            "cold_import_floor": floors["floor"],
            "cold_import_api_floor": floors["api_floor"],
            "package_mb": package_megabytes(layer, packages),
            "compile_ms": {
                "shared_layer_sources": _compile_milliseconds(sorted(layer.rglob("*.py"))),
                "largest_function_own_files": max(
                    _compile_milliseconds(sorted(folder.glob("*.py"))) for folder in functions
                ),
            },
            "python": platform.python_version(),
        }


def _combined(runs: list[dict]) -> dict:
    """Several runs of one kind as one: their jobs' overheads together, their Lambda time summed."""
    return {
        "jobs": sum(measured["jobs"] for measured in runs),
        "overheads": [seconds for measured in runs for seconds in measured["overheads"]],
        "lambda_gb_seconds": sum(measured["lambda_gb_seconds"] for measured in runs),
    }


def _percentile(values: list[float], q: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[q - 1], 3)


COUNTER = CallCounter()
API_CALLS: ApiCalls  # made with the stack, whose API front it wraps


def measure_modes(stack: LocalStack, baseline_arn: str, workflow: str) -> dict:
    """The service in every upstream mode, then the baseline once (its fixed Waits never read an
    eta), on the same tasks; before each mode, unmeasured, jobs with other prompts in that mode
    teach the poll function how long tasks take and whether the etas tell the truth, as a
    deployment's first minutes with that upstream would. The baseline comes last: its jobs, read
    through the API, would teach the API's estimate its fixed Waits."""
    measured = {}
    for mode in MODES:
        stack.emulator.configure(eta_style=mode)
        run(stack, "service", baseline_arn, jobs=WARM_UP_JOBS, prompt=f"bench warm-up {mode}")
        measured[mode] = run(stack, "service", baseline_arn)
    stack.emulator.configure(eta_style="truthful")
    baseline = run(stack, "baseline", baseline_arn)
    read_seconds = statistics.median(baseline["gets_seconds"])  # the harness's reads are never held
    modes = {mode: mode_results(runs, workflow, read_seconds) for mode, runs in measured.items()}
    return {
        "baseline": {
            "overhead_s": {
                "p50": _percentile(baseline["overheads"], 50),
                "p95": _percentile(baseline["overheads"], 95),
            },
            "upstream_polls_per_job": {
                "mean": round(statistics.mean(baseline["upstream_polls"]), 2),
                "max": max(baseline["upstream_polls"]),
            },
            "transitions_per_job": round(statistics.mean(baseline["transitions"]), 2),
            "lambda_gb_seconds_per_job": round(baseline["lambda_gb_seconds"] / baseline["jobs"], 3),
            "cost_per_image_usd": round(cost_per_image(baseline, "STANDARD"), 8),
            "aws_calls_per_job": {k: round(v / baseline["jobs"], 2) for k, v in sorted(baseline["aws_calls"].items())},
        },
        "modes": modes,
        "read_seconds": round(read_seconds, 4),
    }


def poll_memory_with_base64_output() -> int:
    """The poll function's memory in a deployment that asks the upstream for base64 images."""
    template = load_template()
    memory = template["Resources"]["PollFunction"]["Properties"]["MemorySize"]
    return int(Resolver(template, {"NovitaBase64Output": "true"}).resolve(memory))


# The largest image the upstream may send: its largest size (each side 1536 at most), a PNG of
# noise, which PNG cannot compress.
LARGEST_IMAGE_SIZE = "1536*1536"
# Jobs the poll function's handler follows to their end in one fresh process, as one warm Lambda
# instance would: a peak that grew with each stored image would show.
PEAK_JOBS = 3
# The poll function's handler module, loaded as Lambda loads it, run in a fresh interpreter on the
# workflow input of each job (argv) until the job ends, each answer handed to the next turn as the
# state machine hands it: the peak of the process's resident memory (VmHWM) after the import and
# after all the jobs. Nothing but the function's own folder and the shared layer is importable.
STORE_PEAK_CODE = """
import json, sys, time

def peak():
    status = open("/proc/self/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024

class Context:
    function_name = "PollFunction"
    memory_limit_in_mb = 128
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:PollFunction"
    aws_request_id = "bench-peak"
    def get_remaining_time_in_millis(self):
        return 60_000

import app
imported = peak()
statuses, stored = [], 0
for given in sys.argv[1:]:
    state = json.loads(given)
    while True:
        state = app.lambda_handler(state, Context())
        if state["status"] != "pending":
            break
        time.sleep(state["wait_seconds"])
    statuses.append(state["status"])
    stored = max(stored, state.get("image", {}).get("bytes", 0))
print(json.dumps({"after_import_mb": imported, "peak_mb": peak(), "image_bytes": stored, "statuses": statuses}))
"""


def poll_store_peak_memory(stack: LocalStack) -> dict:
    """The poll function's peak memory while it stores the largest image the upstream may send:
    its handler in a process of its own (the local stack runs every function in one), on the
    running stack's S3, DynamoDB and emulator, with the jobs submitted by the service's own submit
    code, whose workflow input it is handed instead of a state machine. The interpreter's own peak;
    Lambda's figure adds its runtime client to it."""
    from zimage.api.request import CreateImageRequest
    from zimage.api.submit import SubmitDependencies, submit_job
    from zimage.runtime import shared_runtime

    class HandedOver:
        """In place of Step Functions: keeps each execution's input for the poll function's process."""

        def __init__(self) -> None:
            self.inputs: list[str] = []

        def start_execution(self, *, input: str, **_: object) -> dict:
            self.inputs.append(input)
            return {}

    handed = HandedOver()
    stack.emulator.configure(image_type="png", image_content="noise", run_seconds_range=None, outlier_share=0.0)
    try:
        deps = SubmitDependencies.from_runtime(shared_runtime())._replace(quota=None, sfn=handed, retention_days=1)
        for n in range(PEAK_JOBS):
            request = CreateImageRequest.model_validate({"prompt": f"bench noise {n}", "size": LARGEST_IMAGE_SIZE})
            submit_job(request, owner="key-one", deps=deps)
    finally:
        stack.emulator.configure(image_type="jpeg", image_content="shapes")
    folder = ROOT / "functions" / "poll"
    out = subprocess.run(  # noqa: S603 - our own interpreter on our own code
        [sys.executable, "-c", STORE_PEAK_CODE, *handed.inputs],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(entry) for entry in (folder, ROOT / "layers" / "shared"))},
        capture_output=True,
        text=True,
        check=True,
        cwd=folder,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    assert measured["statuses"] == ["succeeded"] * PEAK_JOBS, measured
    return {
        "jobs": PEAK_JOBS,
        "image_bytes": measured["image_bytes"],
        "after_import_mb": round(measured["after_import_mb"], 1),
        "peak_mb": round(measured["peak_mb"], 1),
        "function_memory_mb": stack.functions["PollFunction"].memory,
    }


def start_stack() -> tuple[LocalStack, str]:
    """A fresh local stack with the bench's upstream, the call counters and the baseline's workflow."""
    stack = LocalStack(
        api_port=0,
        api_keys={DEV_API_KEY: "key-one"},
        # The template's own prior, not the emulator's: the schedule learns the tasks as it would on AWS.
        parameters={
            "LogLevel": "ERROR",
            "TaskSecondsPrior": load_template()["Parameters"]["TaskSecondsPrior"]["Default"],
        },
        emulator_settings=EmulatorSettings(
            queue_seconds=QUEUE_SECONDS,
            run_seconds_range=TYPICAL_SECONDS,
            outlier_share=OUTLIER_SHARE,
            outlier_range=OUTLIER_SECONDS,
        ),
    ).start()
    from zimage.runtime import shared_runtime

    runtime = shared_runtime()
    for client in (runtime.images._s3, runtime.jobs._table.meta.client, runtime.sfn, runtime.events, runtime.sqs):
        COUNTER.attach(client)
    global API_CALLS
    API_CALLS = ApiCalls(stack)
    arn = stack.add_function("BaselinePollFunction", ROOT / "bench" / "baseline_poll.py", memory=BASELINE_MEMORY_MB)
    definition = substitute_definition(
        (ROOT / "bench" / "baseline_job_poller.asl.json").read_text(), {"BaselinePollFunctionArn": arn}
    )
    baseline_arn = stack.create_state_machine("zimage-bench-baseline", definition)
    COUNTER.take()
    return stack, baseline_arn


def measure() -> dict:
    """Run every measurement on a fresh local stack; the results as bench/results.json keeps them."""
    stack, baseline_arn = start_stack()
    try:
        from zimage.runtime import shared_runtime

        workflow = shared_runtime().settings.workflow_type
        policies = measure_modes(stack, baseline_arn, workflow)
        store_peak = poll_store_peak_memory(stack)
        # Image delivery: a download from the upstream's storage, or the bytes inline in the
        # task result. Large images, where the two differ most; in the order A B B A, so that
        # neither way always runs first.
        delivery = {"url": [], "base64": []}
        poll_function = stack.functions["PollFunction"]
        poll_memory = {"url": poll_function.memory, "base64": poll_memory_with_base64_output()}
        for kind in ("url", "base64", "base64", "url"):
            poll_function.memory = poll_memory[kind]  # billed as the template would deploy it
            delivery[kind].append(
                run(
                    stack, "service", baseline_arn, jobs=DELIVERY_JOBS, size="1024*1024", base64_output=kind == "base64"
                )
            )
        poll_function.memory = poll_memory["url"]
        by_url, inline = (_combined(delivery[kind]) for kind in ("url", "base64"))
        stack.emulator.configure(run_seconds_range=None, outlier_share=0.0)
        load = run_load(stack, jobs=200, run_seconds=LOAD_RUN_SECONDS)
    finally:
        stack.stop()
    results = {
        "jobs_per_mode": JOBS_PER_POLICY,
        "warm_up_jobs_per_mode": WARM_UP_JOBS,
        "task_seconds": {
            "typical": list(TYPICAL_SECONDS),
            "outlier_share": OUTLIER_SHARE,
            "outliers": list(OUTLIER_SECONDS),
            "queued": QUEUE_SECONDS,
        },
        "arrival_interval_s": ARRIVAL_INTERVAL_SECONDS,
        "service_workflow": workflow,
        "prices_as_of": PRICES_AS_OF,
        **policies,
        "poll_store_peak_memory": store_peak,
        "image_delivery_1024": {
            kind: {
                "overhead_p50_s": _percentile(measured["overheads"], 50),
                "overhead_p95_s": _percentile(measured["overheads"], 95),
                "lambda_gb_seconds_per_job": round(measured["lambda_gb_seconds"] / measured["jobs"], 3),
            }
            for kind, measured in (("url", by_url), ("base64", inline))
        },
        **_measure_deployables(),
        "concurrent_jobs": {
            **{
                key: load[key]
                for key in ("submitted", "clients", "peak_in_flight", "succeeded", "failed", "lost", "refused")
            },
            "submit_latency_s": load["submit_latency_s"],
        },
        "measured_on": date.today().isoformat(),
    }
    return results
