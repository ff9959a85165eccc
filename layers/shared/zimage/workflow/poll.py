"""The workflow's poll step: one turn of asking the upstream about a task. It says when to ask
again, or stores the image of a task that ended with one and ends the job, or says why the job
failed.

One function does both, at Lambda's least memory: a turn's sleeps between fast polls bill by
memory, and storing an image holds only its bytes on their way to S3 (images are checked from
their headers, never decoded; the peak is measured in docs/performance.md). Storing in the turn
that finds the task ended spares each job a second function call and the state machine's
hand-off to it.

It is idempotent, because Step Functions retries it: the image key comes from the job id, and
the job's status only moves through conditional writes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from zimage.images.size import parse_size
from zimage.jobs.durations import DEFAULT_TASK_SECONDS, ETA_GRANULARITY_SECONDS, Durations
from zimage.jobs.model import SUCCEEDED, present_fields
from zimage.jobs.store import JobStore
from zimage.misconfiguration import account_fault, report_misconfigured
from zimage.upstream.errors import InvalidImage, UpstreamError, UpstreamRejected
from zimage.upstream.novita import NovitaClient, TaskResult, TaskStatus
from zimage.workflow import timing
from zimage.workflow.answers import PENDING, answer_for, carried, completion
from zimage.workflow.schedule import (
    PollPolicy,
    believed_end,
    eta_proved_wrong,
    eta_verdict,
    expected_remaining_seconds,
    next_poll_in,
    sleeps_in_lambda,
    wait_seconds,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Metrics

    from zimage.images.store import ImageStore  # built only by the turn that stores

logger = Logger(child=True)


class ImageUnavailable(Exception):
    """The image URL refused the download (an expired link, most likely). Raised so that the
    workflow retries the step, which asks the upstream again for a fresh URL."""


class PollDependencies(NamedTuple):
    novita: NovitaClient
    jobs: JobStore
    # Built by the turn that stores an image, not by every turn: most find the task running, and
    # an S3 client costs a cold start's first turn time and memory for nothing.
    images: Callable[[], ImageStore]
    max_image_bytes: int
    presigned_url_seconds: int
    max_consecutive_upstream_errors: int = 5
    policy: PollPolicy = PollPolicy()
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    poll_turn_seconds: int = 60
    function_ends_at: float | None = None  # when this invocation's own timeout strikes (epoch)
    # How long tasks take: the function's memory across warm calls; without it, the prior alone.
    durations: Durations | None = None

    @classmethod
    def from_runtime(
        cls,
        runtime: Any,
        *,
        function_ends_at: float | None = None,
        durations: Durations | None = None,
    ) -> PollDependencies:
        """The step's collaborators and policy, from the deployment's settings."""
        settings = runtime.settings
        return cls(
            durations=durations,
            novita=runtime.novita,
            jobs=runtime.jobs,
            images=lambda: runtime.images,
            max_image_bytes=settings.max_image_bytes,
            presigned_url_seconds=settings.presigned_url_seconds,
            max_consecutive_upstream_errors=settings.max_consecutive_upstream_errors,
            poll_turn_seconds=settings.poll_turn_seconds,
            function_ends_at=function_ends_at,
            policy=PollPolicy(
                min_wait_seconds=settings.min_wait_seconds,
                max_wait_seconds=settings.max_wait_seconds,
                fast_poll_window_seconds=settings.fast_poll_window_seconds,
                fast_poll_interval_seconds=settings.fast_poll_interval_seconds,
            ),
        )


def poll(state: dict, deps: PollDependencies) -> dict:
    """`state` is the workflow's payload (see submit.workflow_input); the answer is the next one,
    with `status` one of pending, succeeded, failed, canceled."""
    job_id, task_id = state["job_id"], state["task_id"]
    deadline = float(state["deadline"])
    polls = int(state.get("polls", 0)) + 1
    upstream_errors = int(state.get("upstream_errors", 0))
    started = answered_at = deps.clock()
    calls_end = _calls_end(state, deps, started)
    result: TaskResult | None = None
    started_processing = state.get("seen_processing", False)
    answers = written = 0  # the upstream's answers this turn, and which of them is in the table
    shown = state.get("shown")  # what the job's record shows clients (_shown), as last written
    durations = deps.durations or Durations(DEFAULT_TASK_SECONDS)
    # Every estimate counts from the submit; executions started before submitted_at was in the
    # input count from their first turn.
    submitted_at = float(state.get("submitted_at") or started)
    first_eta_end = state.get("eta_end")  # where the task's first eta put its end, for the verdict
    eta_wrong = bool(state.get("eta_wrong", False))
    last_pending_at = state.get("last_pending_at")  # the last answer that found the task running
    # In-process polling never holds the Lambda past twice the window, whatever the plan says.
    in_lambda_until = started + 2 * deps.policy.fast_poll_window_seconds
    gap: float | None = None
    shown_eta: int | None = None

    while True:
        time_left = calls_end - deps.clock()
        if time_left < timing.SHORTEST_CALL_SECONDS:
            break  # no call started now could end in time: the deadline check or a Wait follows
        try:
            result = deps.novita.get_task_result(task_id, within=time_left)
            answered_at, answers = deps.clock(), answers + 1
            upstream_errors = 0
        except UpstreamRejected as exc:
            # 4xx on a task we started: TASK_NOT_FOUND or our key was revoked. Asking again
            # will not change the answer.
            if fault := account_fault(exc):
                report_misconfigured(fault)
                return _failed(state, deps, fault.code, fault.message)
            code = "upstream_task_lost" if exc.reason == "TASK_NOT_FOUND" or exc.status == 404 else "upstream_rejected"
            return _failed(state, deps, code, f"the image model no longer answers for this task: {exc.message}")
        except UpstreamError as exc:
            if fault := account_fault(exc):  # an unreadable key: retried, since the operator may fix it in time
                report_misconfigured(fault)
            upstream_errors += 1
            logger.warning("upstream poll failed", extra={"error": exc.message, "in_a_row": upstream_errors})
            if upstream_errors >= deps.max_consecutive_upstream_errors:
                return _failed(
                    state,
                    deps,
                    "upstream_unavailable",
                    f"the image model failed {upstream_errors} polls in a row; last: {exc.message}",
                )
            gap = None
            break  # back off through the Wait state rather than hammering a failing upstream

        elapsed = answered_at - submitted_at
        if result.status is TaskStatus.SUCCEED:
            _learn(durations, job_id, submitted_at, last_pending_at, answered_at, first_eta_end)
            inline = bool(result.images) and not result.images[0].is_url
            if inline or calls_end - deps.clock() >= timing.SHORTEST_DOWNLOAD_SECONDS:
                return store_image(state, deps, result, calls_end)
            if deps.clock() >= deadline:
                return _failed(state, deps, "timeout", timing.DEADLINE_MESSAGE)
            gap = 0.0  # ended, but found too late in the turn to download: the next turn, after the shortest Wait
            break
        if result.status is TaskStatus.FAILED:
            reason = result.reason or "no reason given"
            return _failed(state, deps, "upstream_failed", f"the image model failed the task: {reason}")
        last_pending_at = answered_at
        remaining = expected_remaining_seconds(result.eta_seconds, result.progress_percent, elapsed)
        eta_end = None if remaining is None else elapsed + remaining
        if first_eta_end is None:
            first_eta_end = eta_end
        eta_wrong = eta_wrong or eta_proved_wrong(elapsed, first_eta_end)
        if eta_wrong:
            eta_end = None
        trusted = durations.eta_trusted()
        # Clients are shown the eta of an upstream whose etas were lately wrong no more than the
        # schedule heeds it.
        shown_eta = _shown_eta(elapsed, durations, eta_end if trusted else None)
        if result.status is TaskStatus.PROCESSING and not started_processing:
            # Shown to clients at once, not only when this turn ends.
            started_processing = True
            written = answers
            progress = _progress_of(result, shown_eta)
            job = deps.jobs.record_progress(job_id, **progress, said_at=_moment(answered_at))
            shown = _shown(progress, answered_at)
            if job is None or job.is_terminal:
                return answer_for(state, job)
        gap = next_poll_in(elapsed, durations, eta_end, eta_trusted=trusted, policy=deps.policy)
        poll_at = answered_at + gap
        if not sleeps_in_lambda(gap) or poll_at > min(in_lambda_until, deadline, calls_end):
            break
        deps.sleep(max(0.0, poll_at - deps.clock()))

    now = deps.clock()
    if now >= deadline:
        return _failed(state, deps, "timeout", timing.DEADLINE_MESSAGE)

    # Each turn ends with a write of its last answer, which also notices a cancel, unless that
    # answer is the one already written (the task started and there was nothing to poll for). An
    # answer that shows clients nothing new (the same status and progress, an end within the
    # second the eta names) is not written: a read notices a cancel for a fifth of a write's price.
    if result is not None and answers != written:
        progress = _progress_of(result, shown_eta)
        if _shows_the_same(shown, _shown(progress, answered_at)):
            job = deps.jobs.get(job_id)
        else:
            job = deps.jobs.record_progress(job_id, **progress, said_at=_moment(answered_at))
            shown = _shown(progress, answered_at)
        if job is None or job.is_terminal:
            return answer_for(state, job)

    now = deps.clock()  # the Wait starts after this turn's writes
    if gap is None:  # the upstream failed: back off exponentially
        gap = float(deps.policy.min_wait_seconds * 2 ** min(upstream_errors, 5))
    else:
        gap -= now - answered_at  # the plan counted from the upstream's answer
    return {
        **carried(state),
        "status": PENDING,
        "polls": polls,
        "upstream_errors": upstream_errors,
        "seen_processing": started_processing,
        "submitted_at": submitted_at,
        "eta_end": first_eta_end,
        "eta_wrong": eta_wrong,
        "last_pending_at": last_pending_at,
        "shown": shown,
        "wait_seconds": wait_seconds(gap, deadline - now, deps.policy),
    }


def run_step(event: dict, context: Any, *, runtime: Any, durations: Durations, metrics: Metrics) -> dict:
    """The poll function's handler: its dependencies from the runtime, bounded by the invocation's
    own end, and the metrics of a job it ended (Jobs<Status>, and the polls it took)."""
    deps = PollDependencies.from_runtime(
        runtime,
        function_ends_at=time.time() + context.get_remaining_time_in_millis() / 1000,
        durations=durations,
    )
    answer = poll(event, deps)
    if answer["status"] != PENDING:
        metrics.add_metric(name=f"Jobs{answer['status'].capitalize()}", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="PollsPerJob", unit=MetricUnit.Count, value=int(event.get("polls", 0)) + 1)
    return answer


def _calls_end(state: dict, deps: PollDependencies, started: float) -> float:
    """No upstream call may outlast this turn, nor leave the execution too little time to send the
    job's event (zimage.workflow.timing). Executions started before execution_deadline was in the
    input derive it from the deadline, as the submit does."""
    execution_deadline = float(
        state.get("execution_deadline")
        or float(state["deadline"]) + deps.poll_turn_seconds + timing.EVENT_RESERVE_SECONDS
    )
    return timing.calls_end(
        turn_started=started,
        poll_turn_seconds=deps.poll_turn_seconds,
        execution_deadline=execution_deadline,
        function_ends_at=deps.function_ends_at,
    )


def _learn(
    durations: Durations,
    job_id: str,
    submitted_at: float,
    last_pending_at: float | None,
    answered_at: float,
    first_eta_end: float | None,
) -> None:
    """One more task seen ending, between the last answer that found it running and this one
    (Durations.add_ended). Its first eta is judged whenever those two answers tell
    (schedule.eta_verdict): a long Wait between them may leave it unjudged, but never blames the
    eta for the service's own lateness. A task is learned once: a turn retried after it found the
    task ended (a refused image link, a failed write) finds it ended again, later."""
    if not durations.first_sight(job_id):
        return
    running_at = None if last_pending_at is None else last_pending_at - submitted_at
    ended_by = answered_at - submitted_at
    durations.add_ended(running_at, ended_by)
    if first_eta_end is not None and running_at is not None:
        verdict = eta_verdict(first_eta_end, running_at, ended_by)
        if verdict is not None:
            durations.record_eta_verdict(verdict)


def store_image(state: dict, deps: PollDependencies, result: TaskResult, calls_end: float) -> dict:
    job_id = state["job_id"]
    if not result.images:
        return _failed(state, deps, "upstream_no_image", "the image model reported success but sent no image")
    # Only the turn that stores needs the image checks: the turns that find the task pending, most
    # of them and the first after every cold start, never import them.
    from zimage.images.checks import decode_base64_image, inspect_image

    image = result.images[0]
    try:
        if image.is_url:
            data = deps.novita.download_image(
                image.location, max_bytes=deps.max_image_bytes, within=calls_end - deps.clock()
            )
        else:
            data = decode_base64_image(image.location)
        facts = inspect_image(data, expected_size=parse_size(state["size"]), max_bytes=deps.max_image_bytes)
    except InvalidImage as exc:
        return _failed(state, deps, "invalid_image", str(exc))
    except UpstreamRejected as exc:
        raise ImageUnavailable(exc.message) from exc

    images = deps.images()
    stored = images.put(job_id, data, facts)
    job = deps.jobs.record_success(job_id, image=stored, seed=result.seed)
    if job is None or job.status != SUCCEEDED or job.image is None:
        # The job ended meanwhile (a cancel, most likely): no record points at this copy, so it
        # goes rather than wait for the bucket's expiry. Written first all the same, because a
        # job recorded as succeeded must never point at a missing object.
        try:
            images.delete(stored.key)
        except Exception:  # the bucket's expiry removes it all the same; the job's end stands
            logger.exception("could not delete the image of a job that ended meanwhile", extra={"key": stored.key})
        return answer_for(state, job)
    # job.image, not `stored`: after a retry the table's record is the one clients see.
    url, expires_at = images.presign(job.image.key, deps.presigned_url_seconds)
    logger.info("image stored", extra={"key": job.image.key, "bytes": job.image.bytes})
    return {
        **carried(state),
        "status": SUCCEEDED,
        "image": {"url": url, "expires_at": expires_at, **present_fields(job.image)},
        **completion(job),
    }


def _failed(state: dict, deps: PollDependencies, code: str, message: str) -> dict:
    job = deps.jobs.record_failure(state["job_id"], code=code, message=message)
    logger.info("job failed", extra={"code": code, "reason": message})
    return answer_for(state, job)


def _shown_eta(elapsed: float, durations: Durations, eta_end: float | None) -> int | None:
    """The eta the job shows: where the service believes the task ends, from now, in whole seconds
    rounded up as upstream etas are."""
    end = believed_end(elapsed, durations, eta_end)
    return None if end is None else max(1, math.ceil(end - elapsed))


def _progress_of(result: TaskResult, shown_eta: int | None) -> dict:
    """The answer as the job shows it, with the service's eta (see _shown_eta). Where the service
    believes nothing (a task past every one seen, with no eta it heeds) the job keeps the eta it
    showed, which counts down to 0 (due any moment): the upstream's own would be one the schedule
    ignores."""
    return {
        "processing": result.status is TaskStatus.PROCESSING,
        "progress": _whole(result.progress_percent),
        "eta_seconds": shown_eta,
    }


def _shown(progress: dict, said_at: float) -> dict:
    """What a written answer shows clients: its status and progress, and where its eta puts the
    task's end (epoch seconds; the view counts the eta down from when it was said)."""
    eta = progress["eta_seconds"]
    return {
        "processing": progress["processing"],
        "progress": progress["progress"],
        "ends_at": None if eta is None else said_at + eta,
    }


def _shows_the_same(before: dict | None, now: dict) -> bool:
    """Whether an answer would show clients what the record shows already."""
    if before is None or (before["processing"], before["progress"]) != (now["processing"], now["progress"]):
        return False
    if now["ends_at"] is None:
        return True  # no eta to show: a write would leave the record's own in place
    if before["ends_at"] is None or now["ends_at"] is None:
        return before["ends_at"] is None and now["ends_at"] is None
    return abs(before["ends_at"] - now["ends_at"]) < ETA_GRANULARITY_SECONDS


def _moment(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def _whole(value: float | None) -> int | None:
    return None if value is None else max(0, round(value))
