"""The fault matrix: every upstream and AWS fault we can think of, played through the whole
pipeline on the local stack, with what the service decides and why; the abuse battery; the load
run.

The same catalogue drives the tests (tests/reliability) and `make reliability`
(reliability/report.py), which writes docs/reliability.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import urllib3
import urllib3.util.connection
from boto3.dynamodb.conditions import Key
from botocore.exceptions import ClientError

from local.novita_emulator import Fault, NovitaEmulator
from local.stack import DEV_API_KEY, QUICK_PARAMETERS, LocalStack
from zimage.images.store import image_key
from zimage.jobs.model import TERMINAL_STATUSES


def _error(status: int, reason: str, message: str = "") -> dict:
    return {"code": status, "reason": reason, "message": message or reason.lower()}


# How many upstream calls of a kind a scenario may make: exactly n, or from..to.
Bound = int | tuple[int, int]

# Task-result calls, from the settings above. A turn asks at most every FastPollIntervalSeconds
# for at most twice FastPollWindowSeconds, and a job has at most MaxPolls turns: more than that
# is a runaway loop.
CALLS_PER_TURN = (
    int(2 * QUICK_PARAMETERS["FastPollWindowSeconds"] / float(QUICK_PARAMETERS["FastPollIntervalSeconds"])) + 1
)
CALLS_PER_JOB = QUICK_PARAMETERS["MaxPolls"] * CALLS_PER_TURN
# The emulator's task ends 0.7 s after the submit, inside the first turn, which asks every
# 0.25 s: 1 to 4 answers, one more for rounding.
USUAL_POLLS = (1, 5)


def after(faults: int, polls: Bound = USUAL_POLLS) -> tuple[int, int]:
    """Task-result calls when `faults` scripted answers come before the usual ones."""
    low, high = (polls, polls) if isinstance(polls, int) else polls
    return (low + faults, high + faults)


@dataclass(frozen=True)
class Refusal:
    """The upstream goes down: the emulator stops listening and closes its connections, so the
    kernel refuses every new one (local.novita_emulator.refuse_connections). It comes back after
    `attempts` refused connection attempts, or when the job has ended."""

    after_submit: bool = False  # go down once POST /v1/images has answered, not before it
    attempts: float = math.inf


@dataclass(frozen=True)
class Scenario:
    name: str
    decision: str
    why: str
    setup: Callable[[LocalStack], None] = lambda stack: None
    body: dict = field(default_factory=lambda: {"prompt": "a fox in the fault matrix", "size": "512*512"})
    http_status: int = 202  # what POST answers
    status: str | None = None  # the job's end, when one was made
    code: str | None = None  # the job's error code, or the HTTP error code; every failure names one
    message: str | None = None  # a fragment of the error message; every failure names one
    submit_calls: Bound = 1  # calls the upstream answered (or cut), by endpoint
    poll_calls: Bound = 0
    image_calls: Bound = 0
    refused_calls: Bound = 0  # connection attempts the kernel refused while the upstream was down
    refuse: Refusal | None = None
    aws_fault: tuple[str, str, str] | None = None  # (client, botocore event, error code)

    @property
    def succeeds(self) -> bool:
        return self.http_status == 202 and self.status == "succeeded"


def _script(endpoint: str, *faults: Fault) -> Callable[[LocalStack], None]:
    return lambda stack: stack.emulator.script(endpoint, *faults)


def _configure(**settings: object) -> Callable[[LocalStack], None]:
    return lambda stack: stack.emulator.configure(**settings)


def _both(*steps: Callable[[LocalStack], None]) -> Callable[[LocalStack], None]:
    return lambda stack: [step(stack) for step in steps]


LIMITED = Fault(status=429, headers={"Retry-After": "1"}, body=_error(429, "RATE_LIMIT_EXCEEDED"))
LIMITED_BARE = Fault(status=429, body=_error(429, "RATE_LIMIT_EXCEEDED"))
UNAVAILABLE = "the image model is unavailable; retry later"  # every 503 a submit answers
NO_ANSWER = "the image model did not answer in time; retry later"
# A read is tried once and retried 3 times (novita.read_retry) before the turn counts an error.
READ_ATTEMPTS = 4

SCENARIOS: list[Scenario] = [
    # --- submit ---------------------------------------------------------------------------------
    Scenario(
        "429 on submit with Retry-After, then accepted",
        "retry",
        "a rate-limited submit made no task; Retry-After is honoured (capped at 4 s)",
        _script("submit", LIMITED),
        status="succeeded",
        submit_calls=2,
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "429 on submit without Retry-After, then accepted",
        "retry",
        "no task was made; exponential back-off",
        _script("submit", LIMITED_BARE),
        status="succeeded",
        submit_calls=2,
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "429 on submit, persisting",
        "retry, then answer 429",
        "the caller gets 429 with Retry-After and no job; retrying longer would hold the API past 29 s",
        _script("submit", LIMITED, LIMITED, LIMITED),
        http_status=429,
        code="upstream_rate_limited",
        message="the image model is at its rate limit",
        submit_calls=3,
    ),
    *[
        Scenario(
            f"{status} on submit",
            "answer 503, no retry",
            "the task may exist upstream; repeating could pay twice, so the caller decides",
            _script("submit", Fault(status=status, body=_error(status, "CREATE_TASK_FAILED"))),
            http_status=503,
            code="upstream_unavailable",
            message=UNAVAILABLE,
        )
        for status in (500, 502, 503, 504)
    ],
    Scenario(
        "503 with Retry-After on submit",
        "answer 503, no retry",
        "urllib3 would retry any 503 with Retry-After; the submit refuses to",
        _script("submit", Fault(status=503, headers={"Retry-After": "0"}, body=_error(503, "BUSY"))),
        http_status=503,
        code="upstream_unavailable",
        message=UNAVAILABLE,
    ),
    Scenario(
        "connection refused once on submit, then accepted",
        "retry",
        "a connection that never opened carried no request, so no task can exist: safe to repeat",
        refuse=Refusal(attempts=1),
        status="succeeded",
        refused_calls=1,
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "connection refused on submit, persisting",
        "retry twice, then answer 503",
        "no task can exist; after 1 s of retries the caller is told at once, no job is made",
        refuse=Refusal(),
        http_status=503,
        code="upstream_unavailable",
        message=UNAVAILABLE,
        submit_calls=0,
        refused_calls=3,  # novita.submit_retry: 2 retries
    ),
    Scenario(
        "connection reset before the submit's answer",
        "answer 504, no retry",
        "the request was sent, so a task may exist",
        _script("submit", Fault(drop=True)),
        http_status=504,
        code="upstream_timeout",
        message=NO_ANSWER,
    ),
    Scenario(
        "read timeout on submit",
        "answer 504, no retry",
        "the request was sent, so a task may exist",
        _script("submit", Fault(delay=1.5, passthrough=True)),
        http_status=504,
        code="upstream_timeout",
        message=NO_ANSWER,
    ),
    Scenario(
        "submit answered with non-JSON",
        "answer 503",
        "no task id to follow",
        _script("submit", Fault(raw=b"<html>bad gateway</html>")),
        http_status=503,
        code="upstream_unavailable",
        message=UNAVAILABLE,
    ),
    Scenario(
        "submit answered without task_id",
        "answer 503",
        "no task id to follow",
        _script("submit", Fault(body={"id": "x"})),
        http_status=503,
        code="upstream_unavailable",
        message=UNAVAILABLE,
    ),
    Scenario(
        "INVALID_API_KEY on submit",
        "answer 503, alarm",
        "the service's own key is wrong, not the caller's request: only the operator can fix it",
        _script("submit", Fault(status=403, body=_error(403, "INVALID_API_KEY"))),
        http_status=503,
        code="upstream_key_refused",
        message="Novita refuses the service's API key (INVALID_API_KEY)",
    ),
    Scenario(
        "BILLING_BALANCE_NOT_ENOUGH on submit",
        "answer 503, alarm",
        "the account must be topped up; retrying cannot help until it is",
        _script("submit", Fault(status=400, body=_error(400, "BILLING_BALANCE_NOT_ENOUGH"))),
        http_status=503,
        code="upstream_balance_empty",
        message="the service's Novita account has no balance left; the operator must top it up",
    ),
    # --- poll -----------------------------------------------------------------------------------
    Scenario(
        "429 on poll",
        "retry",
        "reads are free to repeat; Retry-After honoured",
        _script("result", LIMITED_BARE, LIMITED),
        status="succeeded",
        poll_calls=after(2),
        image_calls=1,
    ),
    *[
        Scenario(
            f"{status} on poll",
            "retry",
            "reads are free to repeat",
            _script("result", *[Fault(status=status, body=_error(status, "GET_RESULT_FAILED"))] * 2),
            status="succeeded",
            poll_calls=after(2),
            image_calls=1,
        )
        for status in (500, 502, 503, 504)
    ],
    Scenario(
        "connection refused on poll for a whole turn",
        "retry next turn",
        "a read: the turn's own retries meet the refusal too, so the Wait backs off and the next turn asks again",
        refuse=Refusal(after_submit=True, attempts=READ_ATTEMPTS),
        status="succeeded",
        # The first turn may have had an answer before the upstream went down.
        poll_calls=(1, 6),
        image_calls=1,
        refused_calls=READ_ATTEMPTS,
    ),
    Scenario(
        "connection refused on poll, persisting",
        "retry, then fail",
        "MaxConsecutiveUpstreamErrors turns in a row, each with its own retries",
        refuse=Refusal(after_submit=True),
        status="failed",
        code="upstream_unavailable",
        message="failed 3 polls in a row; last: the upstream could not be reached for GET /v3/async/task-result",
        poll_calls=(0, 1),
        refused_calls=3 * READ_ATTEMPTS,
    ),
    Scenario(
        "connection reset on poll",
        "retry",
        "a read",
        _script("result", Fault(drop=True)),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "connection reset mid-body on poll",
        "retry next turn",
        "the body was cut; the next poll asks again",
        _script("result", Fault(body={"task": {"status": "TASK_STATUS_SUCCEED"}, "pad": "x" * 200}, truncate=20)),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "read timeout on poll",
        "retry",
        "a read",
        _script("result", Fault(delay=1.5, passthrough=True)),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "slow body on poll",
        "retry next turn",
        "a body may take 3x the read timeout, then it is cut",
        _script("result", Fault(body={"task": {"status": "TASK_STATUS_PROCESSING"}, "pad": "x" * 40}, slow_body=4)),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "non-JSON poll answers, persisting",
        "retry, then fail",
        "MaxConsecutiveUpstreamErrors polls in a row (after each one's own retries)",
        _script("result", *[Fault(raw=b"<html>oops</html>")] * 20),
        status="failed",
        code="upstream_unavailable",
        message="3 polls in a row; last: the upstream answered GET /v3/async/task-result with a body that is not JSON",
        poll_calls=3,  # a 200 is not retried inside a turn: one answer a turn
    ),
    Scenario(
        "truncated JSON on poll",
        "retry next turn",
        "counted as an upstream error, then recovered",
        _script("result", Fault(raw=b'{"task": {"status": "TASK_ST')),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "JSON without task",
        "keep polling",
        "an unknown status is not final; the deadline bounds it",
        _script("result", Fault(body={"images": []})),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "JSON without task, persisting",
        "keep polling, then fail",
        "ends at the deadline or the poll cap, whichever comes first",
        _script("result", *[Fault(body={"extra": {}})] * 60),
        status="failed",
        code="timeout",
        message="the image was not ready",  # before the job's deadline / within the allowed number of polls
        poll_calls=(QUICK_PARAMETERS["MaxPolls"], CALLS_PER_JOB),
    ),
    Scenario(
        "task without status",
        "keep polling",
        "as unknown",
        _script("result", Fault(body={"task": {"task_id": "x"}})),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "unknown status",
        "keep polling",
        "TASK_STATUS_UNKNOWN (known to the JS SDK) is not final",
        _script("result", Fault(body={"task": {"status": "TASK_STATUS_UNKNOWN"}})),
        status="succeeded",
        poll_calls=after(1),
        image_calls=1,
    ),
    Scenario(
        "image_url_ttl as a string",
        "accept",
        "documented variant",
        _configure(ttl_style="string"),
        status="succeeded",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        'image_url_ttl as "0"',
        "accept",
        "documented variant: unspecified",
        _configure(ttl_style="zero"),
        status="succeeded",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "FAILED with a reason",
        "fail",
        "the upstream decided",
        _configure(outcome="fail", fail_reason="NSFW content"),
        status="failed",
        code="upstream_failed",
        message="the image model failed the task: NSFW content",
        poll_calls=USUAL_POLLS,
    ),
    Scenario(
        "FAILED without a reason",
        "fail",
        "the upstream decided",
        _configure(outcome="fail", fail_reason=""),
        status="failed",
        code="upstream_failed",
        message="the image model failed the task: no reason given",
        poll_calls=USUAL_POLLS,
    ),
    Scenario(
        "a task that never finishes",
        "fail at the deadline or the poll cap",
        "ExecutionTimeoutSeconds, MaxPolls",
        _configure(outcome="never", eta_override=30),
        status="failed",
        code="timeout",
        # Which bound comes first depends on whether the poll function trusts the upstream's etas
        # by then (what the earlier jobs taught it): a trusted eta of 30 s waits to the deadline.
        message="the image was not ready",
        # An eta of 30 s, far past the tasks the poll function has seen end: asked at history's
        # pace until past them, then turns as long as the eta asks, up to MaxWaitSeconds.
        poll_calls=(2, CALLS_PER_JOB),
    ),
    Scenario(
        "a task always almost done",
        "fail at the poll cap",
        "MaxPolls bounds the turns",
        _configure(outcome="never", eta_override=1),
        status="failed",
        code="timeout",
        message="the image was not ready within the allowed number of polls",
        poll_calls=(QUICK_PARAMETERS["MaxPolls"], CALLS_PER_JOB),
    ),
    Scenario(
        "TASK_NOT_FOUND on poll",
        "fail",
        "asking again cannot bring the task back",
        _script("result", Fault(status=404, body=_error(404, "TASK_NOT_FOUND"))),
        status="failed",
        code="upstream_task_lost",
        message="no longer answers for this task: the upstream answered HTTP 404 TASK_NOT_FOUND",
        poll_calls=1,
    ),
    Scenario(
        "INVALID_API_KEY on poll",
        "fail, alarm",
        "the key was revoked while the job ran; asking again cannot help",
        _script("result", Fault(status=403, body=_error(403, "INVALID_API_KEY"))),
        status="failed",
        code="upstream_key_refused",
        message="Novita refuses the service's API key (INVALID_API_KEY)",
        poll_calls=1,
    ),
    # --- the image ------------------------------------------------------------------------------
    # The poll turn that meets a refused image raises; the state machine retries the turn twice
    # (States.ALL, MaxAttempts 2), and each attempt asks the upstream again, whose answer may carry
    # a fresh link. The turn that found the task may have polled fast up to seven times, by what
    # it learned so far.
    Scenario(
        "image URL answers 403",
        "retry the turn, then fail",
        "a fresh task result may carry a fresh link",
        _configure(image_status=403),
        status="failed",
        code="image_unavailable",
        message="could not be downloaded: the image URL answered HTTP 403",
        poll_calls=after(2, (1, 7)),
        image_calls=3,
    ),
    Scenario(
        "image URL answers 404",
        "retry the turn, then fail",
        "as 403",
        _configure(image_status=404),
        status="failed",
        code="image_unavailable",
        message="could not be downloaded: the image URL answered HTTP 404",
        poll_calls=after(2, (1, 7)),
        image_calls=3,
    ),
    Scenario(
        "image URL answers 403 once",
        "retry the turn",
        "recovers with a fresh result",
        _script("image", Fault(status=403, raw=b"<Error/>")),
        status="succeeded",
        poll_calls=after(1, (1, 7)),
        image_calls=2,
    ),
    Scenario(
        "not an image",
        "fail",
        "the bytes will not change",
        _configure(image_variant="not_image"),
        status="failed",
        code="invalid_image",
        message="not a JPEG, PNG or WebP image",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "truncated image",
        "fail",
        "the upstream's copy is broken",
        _configure(image_variant="truncated"),
        status="failed",
        code="invalid_image",
        message="the upstream JPEG image is truncated",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "image of the wrong size",
        "fail",
        "not what was asked for",
        _configure(image_variant="wrong_size"),
        status="failed",
        code="invalid_image",
        message="the upstream image is 256*256, not the requested 512*512",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "image larger than the cap",
        "fail",
        "MaxImageBytes; read no further",
        _configure(image_variant="oversized"),
        status="failed",
        code="invalid_image",
        message="over the 1048576 byte cap",
        poll_calls=USUAL_POLLS,
        image_calls=1,
    ),
    Scenario(
        "invalid base64",
        "fail",
        "the data will not change",
        _both(_configure(image_variant="bad_base64"), lambda stack: _set_base64(stack, True)),
        status="failed",
        code="invalid_image",
        message="neither a URL nor valid base64",
        poll_calls=USUAL_POLLS,
    ),
    # --- AWS --------------------------------------------------------------------------------------
    # The failed turn is retried by the state machine: the retry asks the upstream again and
    # downloads from the link its answer carries.
    Scenario(
        "S3 write fails once",
        "retry the turn",
        "the key comes from the job id: the retry overwrites",
        status="succeeded",
        poll_calls=after(1),
        image_calls=2,
        aws_fault=("s3", "before-call.s3.PutObject", "InternalError"),
    ),
    Scenario(
        "DynamoDB write throttled once",
        "retry the turn",
        "conditional writes make the retry safe",
        status="succeeded",
        # The first write is the turn's progress, or the success when the first answer is final.
        poll_calls=after(1),
        image_calls=(1, 2),
        aws_fault=("dynamodb", "before-call.dynamodb.UpdateItem", "ProvisionedThroughputExceededException"),
    ),
    Scenario(
        "Lambda crash after the S3 write",
        "retry the turn",
        "the retry rewrites the same key and records the job once",
        status="succeeded",
        poll_calls=after(1),
        image_calls=2,
        aws_fault=("s3", "after-call.s3.PutObject", "Crash"),
    ),
]


def _set_base64(stack: LocalStack, enabled: bool) -> None:
    from zimage.runtime import shared_runtime

    runtime = shared_runtime()
    runtime.settings = runtime.settings._replace(base64_output=enabled)


# How long after its deadline a job may end. The poll step checks the deadline when a turn ends
# and never asks for a Wait longer than what is left of it, but a Wait lasts at least 1 s, and
# the turn it wakes runs to its end: at longest one read that times out on every attempt
# (READ_ATTEMPTS x UpstreamReadTimeoutSeconds, with 0.5 + 1 s of back-off between them). Half a
# second more for the table writes and state transitions on a shared machine. The backstops that
# would end a job the poll step let through come much later: the execution's TimeoutSeconds
# (ExecutionTimeoutSeconds) and the sweeper, once the last turn and the event's time have passed.
DEADLINE_MARGIN_SECONDS = 1 + READ_ATTEMPTS * QUICK_PARAMETERS["UpstreamReadTimeoutSeconds"] + 1.5 + 0.5
COMPLETION_EVENTS = {"succeeded": "Image Generation Succeeded", "failed": "Image Generation Failed"}


def within(value: int, bound: Bound) -> bool:
    low, high = (bound, bound) if isinstance(bound, int) else bound
    return low <= value <= high


def _bound_text(bound: Bound) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound[0]}..{bound[1]}"


@dataclass
class Outcome:
    scenario: Scenario
    http_status: int
    job_id: str | None = None
    status: str | None = None
    code: str | None = None
    message: str = ""
    calls: dict = field(default_factory=dict)  # answered by endpoint, and "refused" connections
    record: Any = None  # the job's record in the table (zimage.jobs.model.Job)
    view_image: dict | None = None  # `image` of the final GET
    stored: dict | None = None  # the object at the record's image key: sha256, bytes, content_type
    objects: int = 0  # objects under images/<job id>
    stray_objects: list[str] = field(default_factory=list)  # made during the scenario, not the job's
    caller_jobs: list[str] = field(default_factory=list)  # the caller's job records made during it
    events: list[dict] = field(default_factory=list)  # completion events for the job
    faults_fired: int = 0  # injected AWS faults that went off
    seconds: float = 0.0

    def problems(self) -> list[str]:
        s, found = self.scenario, []
        if not s.succeeds and not (s.code and s.message):
            found.append("the scenario names no expected error code and message")
        if self.http_status != s.http_status:
            found.append(f"HTTP {self.http_status}, expected {s.http_status}")
        if self.status != s.status:
            found.append(f"job {self.status}, expected {s.status}")
        if self.code != s.code:
            found.append(f"code {self.code}, expected {s.code}")
        if s.message is None and self.message:
            found.append(f"message {self.message!r}, expected none")
        if s.message is not None and s.message not in self.message:
            found.append(f"message {self.message!r} lacks {s.message!r}")
        for kind, bound in (
            ("submit", s.submit_calls),
            ("result", s.poll_calls),
            ("image", s.image_calls),
            ("refused", s.refused_calls),
        ):
            if not within(self.calls.get(kind, 0), bound):
                found.append(f"{self.calls.get(kind, 0)} {kind} calls, expected {_bound_text(bound)}")
        if s.aws_fault and self.faults_fired != 1:
            found.append(f"the injected {s.aws_fault[0]} fault went off {self.faults_fired} times, expected once")
        if self.stray_objects:
            found.append(f"objects stored that belong to no job of this scenario: {self.stray_objects}")
        if self.job_id:
            found += self._job_problems()
        elif self.caller_jobs:
            found.append(f"the refused submit left job records behind: {self.caller_jobs}")
        return found

    def _job_problems(self) -> list[str]:
        found, job = [], self.record
        if job is None:
            return ["the job has no record in the table"]
        if job.status not in TERMINAL_STATUSES:
            found.append(f"job left {job.status}")
        elif not job.completed_at:
            found.append("the ended job has no completed_at")
        else:
            from zimage.clock import epoch_seconds

            late = epoch_seconds(job.completed_at) - epoch_seconds(job.deadline_at)
            if late > DEADLINE_MARGIN_SECONDS:
                found.append(f"ended {late:.1f} s after its deadline, more than {DEADLINE_MARGIN_SECONDS} s")
        kinds = [event["detail-type"] for event in self.events]
        if kinds != [COMPLETION_EVENTS.get(job.status)]:
            found.append(f"completion events {kinds}, expected one {COMPLETION_EVENTS.get(job.status)!r}")
        if job.status != "succeeded":
            if self.objects or job.image:
                found.append(f"{self.objects} stored objects (image in record: {job.image}), expected none")
            return found
        image = job.image
        if image is None or self.objects != 1 or self.stored is None:
            return [*found, f"{self.objects} stored objects, image in record {image}: expected one of each"]
        if image.key != image_key(job.job_id):
            found.append(f"stored at {image.key}, not at the job's own key")
        recorded = {"sha256": image.sha256, "bytes": image.bytes, "content_type": image.content_type}
        if self.stored != recorded:
            found.append(f"the stored object {self.stored} is not the recorded image {recorded}")
        shown = {name: (self.view_image or {}).get(name) for name in recorded}
        if shown != recorded:
            found.append(f"GET shows the image as {shown}, the record as {recorded}")
        detail = self.events[0]["detail"] if self.events else {}
        if (detail.get("key"), detail.get("image", {}).get("sha256")) != (image.key, image.sha256):
            found.append("the succeeded event names another object than the record")
        return found


@contextmanager
def aws_fault(fault: tuple[str, str, str] | None) -> Iterator[Counter[str]]:
    """Fail the first matching call of the functions' own boto3 client (once); the counter says
    whether it went off."""
    fired: Counter[str] = Counter()
    if fault is None:
        yield fired
        return
    from zimage.runtime import shared_runtime

    runtime = shared_runtime()
    service, event, code = fault
    client = runtime.images._s3 if service == "s3" else runtime.jobs._table.meta.client
    lock = threading.Lock()

    def fail_once(**call: Any) -> None:
        # The job's own writes: the daily caps' counters (a submit's first write) have their own tests.
        if service == "dynamodb" and b"quota#" in (call.get("params") or {}).get("body", b""):
            return
        with lock:
            if fired["fault"]:
                return
            fired["fault"] += 1
        raise ClientError({"Error": {"Code": code, "Message": "injected fault"}}, event.rsplit(".", 1)[-1])

    client.meta.events.register(event, fail_once, unique_id="reliability-fault")
    try:
        yield fired
    finally:
        client.meta.events.unregister(event, unique_id="reliability-fault")


class UpstreamOutage:
    """Takes the emulator down for a scenario, and counts the connection attempts the kernel
    refused meanwhile. Only the client sees those (a refused connection never reaches the
    emulator), so the count is taken where the product's HTTP client, urllib3, opens its
    sockets; the refusal itself is the kernel's."""

    def __init__(self, emulator: NovitaEmulator):
        self.emulator = emulator
        self.refused = 0
        self._port = urlsplit(emulator.url).port
        self._attempts = math.inf
        self._down = False
        self._lock = threading.Lock()
        self._open = urllib3.util.connection.create_connection

    def begin(self, attempts: float) -> None:
        with self._lock:
            self._attempts, self._down = attempts, True
            self.emulator.refuse_connections()

    def end(self) -> None:
        with self._lock:
            if self._down:
                self._down = False
                self.emulator.accept_connections()

    def _observed(self, address: tuple, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._open(address, *args, **kwargs)
        except ConnectionRefusedError:
            if address[1] == self._port:
                with self._lock:
                    self.refused += 1
                    back = self._down and self.refused >= self._attempts
                if back:
                    self.end()
            raise

    @contextmanager
    def watching(self) -> Iterator[UpstreamOutage]:
        with mock.patch.object(urllib3.util.connection, "create_connection", self._observed):
            try:
                yield self
            finally:
                self.end()


def event_tap(stack: LocalStack) -> str:
    """A queue that gets every completion event on the stack's bus, as a customer's rule would."""
    sqs, events = stack.client("sqs"), stack.client("events")
    url = sqs.create_queue(QueueName="reliability-event-tap")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = json.dumps({"source": ["zimage"]})
    events.put_rule(Name="reliability-event-tap", EventBusName=stack.event_bus, EventPattern=pattern)
    events.put_targets(Rule="reliability-event-tap", EventBusName=stack.event_bus, Targets=[{"Id": "tap", "Arn": arn}])
    return url


def drain(stack: LocalStack, queue_url: str) -> list[dict]:
    """Every event in the tap now. EventBridge's rule delivers while the workflow's Emit state
    runs, so once the execution has ended its event is there."""
    sqs, found = stack.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return found


def _stored_keys(stack: LocalStack) -> set[str]:
    pages = stack.client("s3").get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def _caller_jobs_since(stack: LocalStack, since: str) -> list[str]:
    from zimage.jobs.store import OWNER_INDEX

    answer = (
        stack.resource("dynamodb")
        .Table(stack.table)
        .query(
            IndexName=OWNER_INDEX,
            KeyConditionExpression=Key("owner").eq(stack.api_keys[DEV_API_KEY]) & Key("created_at").gte(since),
        )
    )
    return [item["job_id"] for item in answer["Items"]]


def _stored_object(stack: LocalStack, image: Any) -> dict:
    got = stack.client("s3").get_object(Bucket=image.bucket, Key=image.key)
    data = got["Body"].read()
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "content_type": got["ContentType"]}


def run_scenario(stack: LocalStack, scenario: Scenario, *, timeout: float = 40) -> Outcome:
    from zimage.clock import iso, utc_now
    from zimage.jobs.model import Job

    stack.emulator.reset()
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=30))
    headers = {"x-api-key": DEV_API_KEY, "Content-Type": "application/json"}
    tap = event_tap(stack)
    drain(stack, tap)  # what earlier jobs sent
    keys_before = _stored_keys(stack)
    since = iso(utc_now())
    outage = UpstreamOutage(stack.emulator)
    started = time.monotonic()
    try:
        scenario.setup(stack)
        with aws_fault(scenario.aws_fault) as fired, outage.watching():
            if scenario.refuse and not scenario.refuse.after_submit:
                outage.begin(scenario.refuse.attempts)
            answer = http.request("POST", f"{stack.api_url}/v1/images", body=json.dumps(scenario.body), headers=headers)
            outcome = Outcome(scenario, answer.status)
            body = answer.json()
            if answer.status != 202:
                outcome.code = body.get("error", {}).get("code")
                outcome.message = body.get("error", {}).get("message", "")
            else:
                if scenario.refuse and scenario.refuse.after_submit:
                    outage.begin(scenario.refuse.attempts)
                outcome.job_id = body["id"]
                deadline = time.monotonic() + timeout
                job = body
                while job["status"] not in TERMINAL_STATUSES and time.monotonic() < deadline:
                    time.sleep(0.2)
                    job = http.request("GET", f"{stack.api_url}/v1/images/{outcome.job_id}", headers=headers).json()
                outcome.status = job["status"]
                outcome.code = job.get("error", {}).get("code")
                outcome.message = job.get("error", {}).get("message", "")
                outcome.view_image = job.get("image")
            outcome.seconds = time.monotonic() - started
            stack.wait_until_idle()
        outcome.calls = {**stack.emulator.calls, "refused": outage.refused}
        outcome.faults_fired = fired["fault"]
        own = image_key(outcome.job_id) if outcome.job_id else None
        new_keys = _stored_keys(stack) - keys_before
        outcome.stray_objects = sorted(key for key in new_keys if key != own)
        events = drain(stack, tap)
        if outcome.job_id:
            outcome.objects = len([key for key in new_keys | keys_before if key == own])
            item = stack.resource("dynamodb").Table(stack.table).get_item(Key={"job_id": outcome.job_id}).get("Item")
            outcome.record = Job.from_item(item) if item else None
            outcome.events = [event for event in events if event["detail"].get("id") == outcome.job_id]
            if outcome.record and outcome.record.image and outcome.objects:
                outcome.stored = _stored_object(stack, outcome.record.image)
        else:
            outcome.caller_jobs = _caller_jobs_since(stack, since)
        return outcome
    finally:
        _set_base64(stack, False)
        stack.emulator.reset()


# --- the abuse battery -------------------------------------------------------------------------

OTHER_KEY = "zimage-reliability-other-key"


@dataclass
class AbuseRequest:
    """A hostile or malformed request, and what its answer must say."""

    name: str
    method: str
    path: str
    headers: dict[str, str | None]  # None drops the header (x-api-key is sent unless dropped)
    body: bytes | None = None
    field: str | None = None  # the one field the error names, when one is at fault
    bad_key: bool = False  # answered by API Gateway's own 403 {"message": "Forbidden"}


FORGED_CURSOR = "WyIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCAiLi4vLi4vIl0"  # ["2026-01-01T00:00:00.000Z", "../../"]


def abuse_requests(foreign_job_id: str) -> list[AbuseRequest]:
    """Hostile or malformed requests; each must be a 4xx."""
    j = "application/json"

    def post(name: str, body: object, field: str | None = None, content_type: str = j, **headers: str | None):
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return AbuseRequest(name, "POST", "/v1/images", {"Content-Type": content_type, **headers}, raw, field)

    def get(name: str, path: str, field: str | None = None, **headers: str | None) -> AbuseRequest:
        return AbuseRequest(name, "GET", path, headers, None, field)

    def without_key(name: str, path: str = "/v1/images", **headers: str | None) -> AbuseRequest:
        return AbuseRequest(name, "GET", path, {"x-api-key": None, **headers}, None, bad_key=True)

    return [
        post("bad JSON", b"{prompt: fox}"),
        post("JSON with trailing garbage", b'{"prompt": "fox"} trailing'),
        post("empty body", b""),
        post("JSON null", None),
        post("array at the top", [{"prompt": "fox"}]),
        post("string at the top", "a fox"),
        post("number at the top", 42),
        post("prompt missing", {"size": "512*512"}, "prompt"),
        post("prompt null", {"prompt": None}, "prompt"),
        post("prompt a number", {"prompt": 12}, "prompt"),
        post("prompt a boolean", {"prompt": True}, "prompt"),
        post("prompt an object", {"prompt": {"text": "fox"}}, "prompt"),
        post("prompt a list", {"prompt": ["fox"]}, "prompt"),
        post("prompt empty", {"prompt": ""}, "prompt"),
        post("prompt whitespace", {"prompt": " \t\n "}, "prompt"),
        post("prompt 4001 characters", {"prompt": "x" * 4001}, "prompt"),
        post("prompt of 1 MB", {"prompt": "x" * 1_000_000}),  # the body as a whole is too large
        post("prompt with NUL", {"prompt": "fox\u0000"}, "prompt"),
        post("prompt with escape codes", {"prompt": "fox\u001b[31m"}, "prompt"),
        post("invalid UTF-8", b'{"prompt": "\xff\xfe"}'),
        post("size 1024x1024", {"prompt": "fox", "size": "1024x1024"}, "size"),
        post("size 0*0", {"prompt": "fox", "size": "0*0"}, "size"),
        post("size 1e3*512", {"prompt": "fox", "size": "1e3*512"}, "size"),
        post("size negative", {"prompt": "fox", "size": "-512*512"}, "size"),
        post("size huge", {"prompt": "fox", "size": "99999999999999999999*512"}, "size"),
        post("size 2048*512", {"prompt": "fox", "size": "2048*512"}, "size"),
        post("size a number", {"prompt": "fox", "size": 1024}, "size"),
        post("size with spaces", {"prompt": "fox", "size": " 512 * 512 "}, "size"),
        post("seed a float", {"prompt": "fox", "seed": 1.5}, "seed"),
        post("seed 7.0", {"prompt": "fox", "seed": 7.0}, "seed"),
        post("seed a boolean", {"prompt": "fox", "seed": True}, "seed"),
        post("seed a string", {"prompt": "fox", "seed": "7"}, "seed"),
        post("seed below -1", {"prompt": "fox", "seed": -2}, "seed"),
        post("seed huge", {"prompt": "fox", "seed": 10**30}, "seed"),
        post("seed 1e400", b'{"prompt": "fox", "seed": 1e400}', "seed"),
        post("unknown field", {"prompt": "fox", "steps": 50}, "steps"),
        post("nested unknown", {"prompt": "fox", "extra": {"webhook": {"url": "https://x"}}}, "extra"),
        post("webhook to metadata", {"prompt": "fox", "webhook_url": "https://169.254.169.254/"}, "webhook_url"),
        post("webhook over http", {"prompt": "fox", "webhook_url": "http://example.com/"}, "webhook_url"),
        post("text/plain", {"prompt": "fox"}, "Content-Type", "text/plain"),
        post("form encoded", b"prompt=fox", "Content-Type", "application/x-www-form-urlencoded"),
        post("bad Idempotency-Key", {"prompt": "fox"}, "Idempotency-Key", **{"Idempotency-Key": "x" * 300}),
        post("giant header", {"prompt": "fox"}, **{"X-Padding": "x" * 60_000}),
        post("header line over 64 KiB", {"prompt": "fox"}, **{"X-Padding": "x" * 70_000}),
        get("path traversal in id", "/v1/images/..%2F..%2Fetc%2Fpasswd"),
        get("dot-dot id", "/v1/images/img_.."),
        get("SQL in id", "/v1/images/img_'%20OR%20'1'='1"),
        get("NoSQL in id", "/v1/images/%7B%22%24ne%22%3A1%7D"),
        get("script in id", "/v1/images/%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        get("very long id", "/v1/images/img_" + "A" * 5000),
        get("another key's job", f"/v1/images/{foreign_job_id}"),
        get("forged cursor", "/v1/images?cursor=eyJqb2JfaWQiOiB7IlMiOiAieCJ9fQ", "cursor"),
        get(
            "cursor of another shape", "/v1/images?cursor=WyIyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMFoiLCAiLi4vLi4vIl0", "cursor"
        ),
        get("SQL in cursor", "/v1/images?cursor=%27%3B%20DROP%20TABLE%20jobs%3B--", "cursor"),
        get("limit zero", "/v1/images?limit=0", "limit"),
        get("limit huge", "/v1/images?limit=100000000000000000000", "limit"),
        get("status unknown", "/v1/images?status=all", "status"),
        get("a route the API does not have", "/v1/admin/jobs"),
        AbuseRequest("another key's cancel", "DELETE", f"/v1/images/{foreign_job_id}", {}),
        without_key("no API key"),
        without_key("unknown API key", **{"x-api-key": "zimage-guessed-key"}),
        without_key("empty API key", **{"x-api-key": ""}),
        without_key("API key in the query string", f"/v1/images?api_key={DEV_API_KEY}"),
        without_key("API key as a bearer token", Authorization=f"Bearer {DEV_API_KEY}"),
        without_key("another key's job without a key", f"/v1/images/{foreign_job_id}"),
    ]


@dataclass
class AbuseResult:
    request: AbuseRequest
    status: int
    body: object  # the answer's JSON (None when it is not JSON)
    upstream_calls: int  # upstream calls made while it was answered
    jobs_created: int

    @property
    def name(self) -> str:
        return self.request.name

    @property
    def error(self) -> dict:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return error if isinstance(error, dict) else {}

    @property
    def code(self) -> str:
        """The error code, or API Gateway's own message when the answer is outside the model."""
        if self.error:
            return str(self.error.get("code"))
        return str(self.body.get("message", "")) if isinstance(self.body, dict) else ""


def run_abuse(stack: LocalStack) -> tuple[list[AbuseResult], dict]:
    """Play the battery; returns each answer and what it left behind."""
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=30))
    foreign = http.request(
        "POST",
        f"{stack.api_url}/v1/images",
        body=json.dumps({"prompt": "someone else's fox"}),
        headers={"x-api-key": OTHER_KEY, "Content-Type": "application/json"},
    ).json()["id"]
    stack.wait_until_idle()
    stack.emulator.reset()
    jobs_before = _job_count(stack)
    results = []
    for request in abuse_requests(foreign):
        calls, jobs = sum(stack.emulator.calls.values()), _job_count(stack)
        headers = {
            name: value for name, value in {"x-api-key": DEV_API_KEY, **request.headers}.items() if value is not None
        }
        answer = http.request(request.method, stack.api_url + request.path, body=request.body, headers=headers)
        try:
            parsed = json.loads(answer.data)
        except ValueError:
            parsed = None
        results.append(
            AbuseResult(
                request, answer.status, parsed, sum(stack.emulator.calls.values()) - calls, _job_count(stack) - jobs
            )
        )
    healthy = http.request(
        "POST",
        f"{stack.api_url}/v1/images",
        body=json.dumps({"prompt": "still fine?"}),
        headers={"x-api-key": DEV_API_KEY, "Content-Type": "application/json", "Prefer": "wait=10"},
    )
    left = {
        "upstream_calls": stack.emulator.calls.get("submit", 0) - 1,  # less the health check's own
        "jobs_left": _job_count(stack) - jobs_before - 1,
        "healthy_after": healthy.status == 200 and healthy.json()["status"] == "succeeded",
    }
    stack.wait_until_idle()
    return results, left


def _job_count(stack: LocalStack) -> int:
    # Jobs only: the table also holds the daily caps' counters (zimage.jobs.quota), which a
    # refused submit may leave at zero.
    return stack.client("dynamodb").scan(
        TableName=stack.table,
        Select="COUNT",
        FilterExpression="begins_with(job_id, :job)",
        ExpressionAttributeValues={":job": {"S": "img_"}},
    )["Count"]


# --- the load run -------------------------------------------------------------------------------


def run_load(
    stack: LocalStack, jobs: int = 200, workers: int = 25, timeout: float = 240, run_seconds: float = 1.0
) -> dict:
    """Submit `jobs` at once from `workers` clients, each upstream task taking `run_seconds`;
    every job must end, once, with one upstream task each. The whole local stack shares one
    interpreter, so its throughput is the same with more clients, which only wait longer inside
    it; with many clients a submit nears the upstream client's read timeout, a limit of this
    machine rather than of the service. How many jobs were in flight together follows from
    that throughput and `run_seconds`, and is reported from the jobs' own timestamps."""
    stack.emulator.reset()
    stack.emulator.configure(run_seconds=run_seconds, run_seconds_range=None)  # one duration for all
    http = urllib3.PoolManager(maxsize=workers, retries=False, timeout=urllib3.Timeout(connect=5, read=60))
    headers = {"x-api-key": DEV_API_KEY, "Content-Type": "application/json"}

    refused: Counter[str] = Counter()

    def submit(n: int) -> tuple[str | None, float]:
        started = time.monotonic()
        answer = http.request(
            "POST",
            f"{stack.api_url}/v1/images",
            body=json.dumps({"prompt": f"fox {n}", "size": "256*256"}),
            headers=headers,
        )
        if answer.status != 202:  # kept with its reason, so a refusal under load can be told apart
            refused[f"{answer.status} {answer.data.decode(errors='replace')[:200]}"] += 1
        return (answer.json()["id"] if answer.status == 202 else None), time.monotonic() - started

    began = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        submitted = list(pool.map(submit, range(jobs)))
    ids = [job_id for job_id, _ in submitted if job_id]
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(finished) < len(ids) and time.monotonic() < deadline:
        for job_id in ids:
            if job_id not in finished:
                job = http.request("GET", f"{stack.api_url}/v1/images/{job_id}", headers=headers).json()
                if job["status"] in TERMINAL_STATUSES:
                    finished[job_id] = {**job, "_seen": time.monotonic()}
        time.sleep(0.5)
    elapsed = time.monotonic() - began
    stack.wait_until_idle(timeout=60)
    submit_latency = sorted(seconds for _, seconds in submitted)
    end_to_end = sorted(job["_seen"] - began for job in finished.values())
    calls = dict(stack.emulator.calls)
    result = {
        "submitted": jobs,
        "clients": workers,
        "accepted": len(ids),
        "distinct_ids": len(set(ids)),
        "succeeded": sum(job["status"] == "succeeded" for job in finished.values()),
        "failed": sum(job["status"] == "failed" for job in finished.values()),
        "lost": len(ids) - len(finished),
        "refused": dict(refused),
        "upstream_tasks": calls.get("submit", 0),
        "upstream_tasks_started_twice": calls.get("submit", 0) - len(ids),
        "peak_in_flight": peak_in_flight(finished.values()),
        "seconds": round(elapsed, 1),
        "throughput_jobs_per_s": round(len(finished) / elapsed, 2),
        "submit_latency_s": _percentiles(submit_latency),
        "done_after_batch_start_s": _percentiles(end_to_end),  # as seen by a 0.5 s sweep of GETs
    }
    stack.emulator.reset()
    return result


def peak_in_flight(jobs: Iterable[dict]) -> int:
    """The most jobs that were accepted and not yet ended at one moment, from their created_at
    and completed_at."""
    changes = sorted(
        (moment, step)
        for job in jobs
        for moment, step in ((job["created_at"], 1), (job.get("completed_at") or job["updated_at"], -1))
    )  # at equal moments an end (-1) sorts before a start, so touching jobs do not overlap
    in_flight = peak = 0
    for _, step in changes:
        in_flight += step
        peak = max(peak, in_flight)
    return peak


def _percentiles(values: list[float]) -> dict:
    if not values:
        return {}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    return {
        "p50": round(cuts[49], 3),
        "p95": round(cuts[94], 3),
        "p99": round(cuts[98], 3),
        "max": round(max(values), 3),
    }


# --- the report ---------------------------------------------------------------------------------
