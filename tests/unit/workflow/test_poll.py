"""The poll step's decisions, with moto in-process for the table and bucket and a scripted
upstream: what it records, what it answers, and that repeating it changes nothing."""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime

import boto3
import pytest

from zimage.clock import epoch_seconds, iso
from zimage.jobs.durations import DEFAULT_TASK_SECONDS, Durations
from zimage.jobs.model import Job, active_shard_for
from zimage.upstream.errors import UpstreamKeyUnavailable, UpstreamRejected, UpstreamUnavailable
from zimage.upstream.novita import TaskResult, TaskStatus, UpstreamImage
from zimage.workflow.poll import ImageUnavailable, PollDependencies, poll
from zimage.workflow.schedule import PLAUSIBLE_SHARE, PollPolicy

from ..conftest import BUCKET, FakeClock, a_job, picture

SIZE = "320*256"
# The eta a job shows for an upstream eta far past anything history saw: the prior's latest
# plausible end.
LATEST_PLAUSIBLE = math.ceil(Durations(DEFAULT_TASK_SECONDS).quantile_after(0, 1 - PLAUSIBLE_SHARE))


class ScriptedNovita:
    """Answers get_task_result from a script (results or errors); the last entry repeats."""

    def __init__(self, *script: TaskResult | Exception, image: bytes | Exception | None = None):
        self.script = list(script)
        self.image = image if image is not None else picture(320, 256)
        self.polls = 0
        self.downloads = 0
        self.given: list[float | None] = []  # the time each call was given

    def get_task_result(self, task_id: str, *, within: float | None = None) -> TaskResult:
        self.polls += 1
        self.given.append(within)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            raise step
        return step

    def download_image(self, url: str, *, max_bytes: int, within: float | None = None) -> bytes:
        self.downloads += 1
        self.given.append(within)
        if isinstance(self.image, Exception):
            raise self.image
        return self.image


def running(eta: float = 0, progress: float = 0, status: TaskStatus = TaskStatus.PROCESSING) -> TaskResult:
    return TaskResult(status=status, eta_seconds=eta, progress_percent=progress)


def done(location: str = "https://cdn.example/img.jpeg", seed: int | None = 99) -> TaskResult:
    return TaskResult(
        status=TaskStatus.SUCCEED, images=(UpstreamImage(location=location, image_type="jpeg"),), seed=seed
    )


@pytest.fixture
def job(jobs) -> Job:
    record = a_job(size=SIZE)
    jobs.create(record)
    return record


def step(
    job: Job,
    jobs,
    images,
    novita,
    clock,
    *,
    deadline_in: float = 600,
    function_ends_in: float | None = None,
    durations: Durations | None = None,
    **state,
) -> dict:
    deps = PollDependencies(
        novita=novita,
        jobs=jobs,
        images=images if callable(images) else lambda: images,  # a callable builds it, as from_runtime does
        max_image_bytes=5_000_000,
        presigned_url_seconds=60,
        max_consecutive_upstream_errors=3,
        policy=PollPolicy(
            min_wait_seconds=1, max_wait_seconds=30, fast_poll_window_seconds=3, fast_poll_interval_seconds=0.5
        ),
        clock=clock,
        sleep=clock.sleep,
        poll_turn_seconds=60,
        function_ends_at=None if function_ends_in is None else clock.now + function_ends_in,
        durations=durations,
    )
    payload = {
        "job_id": job.job_id,
        "task_id": "t-1",
        "size": SIZE,
        "deadline": clock.now + deadline_in,
        "polls": 0,
        **state,
    }
    return poll(payload, deps)


def test_a_finished_task_is_stored_and_recorded(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(done()), clock)

    assert answer["status"] == "succeeded"
    assert answer["image"]["key"] == f"images/{job.job_id}"
    assert answer["image"]["url"].startswith("https://")
    stored = jobs.get(job.job_id)
    assert stored.status == "succeeded"
    assert stored.seed == 99  # the seed the upstream actually used
    assert (stored.image.width, stored.image.height) == (320, 256)
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key=stored.image.key)
    assert head["ContentType"] == "image/jpeg"
    assert head["Metadata"]["sha256"] == stored.image.sha256
    # kept for the retention the store was made with (7 days) from when it was written
    kept_for = epoch_seconds(stored.image.kept_until) - head["LastModified"].timestamp()
    assert abs(kept_for - 7 * 86400) < 60


def test_repeating_the_step_after_success_neither_duplicates_nor_changes_anything(job, jobs, images, clock):
    first = step(job, jobs, images, ScriptedNovita(done()), clock)
    again = step(job, jobs, images, ScriptedNovita(done()), clock)

    assert again["status"] == "succeeded"
    assert again["image"]["sha256"] == first["image"]["sha256"]
    listing = boto3.client("s3").list_objects_v2(Bucket=BUCKET)
    assert listing["KeyCount"] == 1


def test_base64_data_is_decoded_instead_of_downloaded(job, jobs, images, clock):
    novita = ScriptedNovita(done(location=base64.b64encode(picture(320, 256, "PNG")).decode()))

    answer = step(job, jobs, images, novita, clock)

    assert answer["status"] == "succeeded"
    assert answer["image"]["content_type"] == "image/png"
    assert novita.downloads == 0


def test_a_task_ending_soon_is_polled_fast_inside_one_step(job, jobs, images, clock):
    novita = ScriptedNovita(running(eta=1), running(eta=1), done())

    answer = step(job, jobs, images, novita, clock)

    assert answer["status"] == "succeeded"
    assert novita.polls == 3


def test_a_task_expected_in_a_few_seconds_waits_for_the_etas_last_second(job, jobs, images, clock):
    novita = ScriptedNovita(running(eta=3))

    answer = step(job, jobs, images, novita, clock)

    assert answer["status"] == "pending"
    assert answer["wait_seconds"] == 2  # etas are whole seconds: the task may end a second early
    assert novita.polls == 1


def test_a_long_eta_lengthens_the_wait_only_as_far_as_history_finds_plausible(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(running(eta=20, progress=10)), clock)

    assert answer["status"] == "pending"
    # No history yet: the deployment's prior, whose median end is well before 20 s.
    assert answer["wait_seconds"] == round(Durations(DEFAULT_TASK_SECONDS).expected_end(0))
    assert answer["polls"] == 1
    stored = jobs.get(job.job_id)
    # Shown as the latest end history finds plausible, not the upstream's 20 s.
    assert (stored.status, stored.progress, stored.eta_seconds) == ("processing", 10, LATEST_PLAUSIBLE)


def test_with_no_eta_the_job_shows_the_historys_estimate(job, jobs, images, clock):
    durations = Durations(DEFAULT_TASK_SECONDS)
    for _ in range(20):
        durations.add(12.0)

    step(job, jobs, images, ScriptedNovita(running()), clock, durations=durations)

    assert jobs.get(job.job_id).eta_seconds == 12


@pytest.mark.parametrize(("verdicts", "shown"), [((), (3, 3)), ((False,) * 4, (7, 9))], ids=["trusted", "not-trusted"])
def test_the_eta_of_an_upstream_not_trusted_is_not_shown(job, jobs, images, clock, verdicts, shown):
    # GIVEN tasks that took 2 to 14 s (a median of 8 s), and an upstream with these verdicts
    durations = Durations(DEFAULT_TASK_SECONDS)
    for n in range(25):
        durations.add(2.0 + 0.5 * n)
    for right in verdicts:
        durations.record_eta_verdict(right)

    # WHEN the upstream says the task ends in 3 s
    step(job, jobs, images, ScriptedNovita(running(eta=3)), clock, durations=durations)

    # THEN the job shows that eta, or history's where the upstream's etas were lately wrong
    low, high = shown
    assert low <= jobs.get(job.job_id).eta_seconds <= high


def test_a_queued_task_stays_queued(job, jobs, images, clock):
    step(job, jobs, images, ScriptedNovita(running(eta=20, status=TaskStatus.QUEUED)), clock)

    assert jobs.get(job.job_id).status == "queued"


def test_an_upstream_failure_records_its_reason(job, jobs, images, clock):
    failed = TaskResult(status=TaskStatus.FAILED, reason="NSFW content detected")

    answer = step(job, jobs, images, ScriptedNovita(failed), clock)

    assert answer == {
        **answer,
        "status": "failed",
        "error": {"code": "upstream_failed", "message": answer["error"]["message"]},
    }
    assert "NSFW content detected" in jobs.get(job.job_id).error.message


def test_a_failure_without_a_reason_still_says_something(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(TaskResult(status=TaskStatus.FAILED)), clock)

    assert answer["error"]["message"].endswith("no reason given")


def test_a_lost_task_fails_at_once(job, jobs, images, clock):
    lost = UpstreamRejected("HTTP 404 TASK_NOT_FOUND", status=404, reason="TASK_NOT_FOUND")

    answer = step(job, jobs, images, ScriptedNovita(lost), clock)

    assert answer["error"]["code"] == "upstream_task_lost"


def test_a_key_novita_stops_accepting_fails_the_job_as_the_operators_to_fix(job, jobs, images, clock, caplog):
    revoked = UpstreamRejected("HTTP 403 INVALID_API_KEY", status=403, reason="INVALID_API_KEY")

    answer = step(job, jobs, images, ScriptedNovita(revoked), clock)

    assert answer["error"]["code"] == "upstream_key_refused"
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["deployment misconfigured"]


def test_a_key_that_cannot_be_read_is_retried_and_reported(job, jobs, images, clock, caplog):
    unreadable = UpstreamKeyUnavailable("SSM parameter /k: AccessDeniedException", aws_error="AccessDeniedException")

    answer = step(job, jobs, images, ScriptedNovita(unreadable), clock)

    assert (answer["status"], answer["upstream_errors"]) == ("pending", 1)
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["deployment misconfigured"]


def test_poll_errors_back_off_until_too_many_in_a_row(job, jobs, images, clock):
    outage = UpstreamUnavailable("HTTP 503", status=503)

    first = step(job, jobs, images, ScriptedNovita(outage), clock)
    third = step(job, jobs, images, ScriptedNovita(outage), clock, upstream_errors=2)

    assert first["status"] == "pending"
    assert first["upstream_errors"] == 1
    assert third["status"] == "failed"
    assert third["error"]["code"] == "upstream_unavailable"


def test_a_good_poll_resets_the_error_count(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(running(eta=20)), clock, upstream_errors=2)

    assert answer["upstream_errors"] == 0


def test_past_the_deadline_the_job_times_out(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(running(eta=60)), clock, deadline_in=-1)

    assert answer["error"]["code"] == "timeout"
    assert jobs.get(job.job_id).status == "failed"


def test_a_canceled_job_is_never_revived(job, jobs, images, clock):
    # GIVEN a job canceled while its task was running
    boto3.resource("dynamodb").Table("unit-jobs").update_item(
        Key={"job_id": job.job_id},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "canceled"},
    )

    # WHEN the task later reports progress, then success
    pending = step(job, jobs, images, ScriptedNovita(running(eta=20)), clock)
    finished = step(job, jobs, images, ScriptedNovita(done()), clock)

    # THEN the job stays canceled, the workflow is told so, and no image copy is left behind
    assert pending["status"] == finished["status"] == "canceled"
    assert jobs.get(job.job_id).status == "canceled"
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_an_image_link_that_refuses_raises_for_the_workflow_to_retry(job, jobs, images, clock):
    novita = ScriptedNovita(done(), image=UpstreamRejected("the image URL answered HTTP 403", status=403))

    with pytest.raises(ImageUnavailable, match="403"):
        step(job, jobs, images, novita, clock)

    assert jobs.get(job.job_id).status == "queued"  # nothing recorded: the retry decides


def test_success_without_an_image_fails_the_job(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(TaskResult(status=TaskStatus.SUCCEED)), clock)

    assert answer["error"]["code"] == "upstream_no_image"


def test_a_wrong_image_fails_the_job_and_stores_nothing(job, jobs, images, clock):
    answer = step(job, jobs, images, ScriptedNovita(done(), image=picture(100, 100)), clock)

    assert answer["error"]["code"] == "invalid_image"
    assert boto3.client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 0


def test_overdue_are_the_jobs_past_the_cutoff_still_active_or_not_announced(jobs):
    def make(deadline: str, status: str = "processing") -> str:
        job = a_job(status=status, size=SIZE, deadline_at=deadline)
        jobs.create(job.with_changes(active_shard=active_shard_for(job.job_id)))
        return job.job_id

    late = make("2026-01-01T00:00:00.000Z")
    on_time = make("2099-01-01T00:00:00.000Z")
    unannounced = make("2026-01-01T00:00:00.000Z")
    jobs.record_failure(unannounced, code="upstream_failed", message="x")
    announced = make("2026-01-01T00:00:00.000Z")
    jobs.record_failure(announced, code="upstream_failed", message="x")
    jobs.mark_announced(announced)

    overdue = jobs.overdue("2026-06-01T00:00:00.000Z")

    assert sorted(overdue) == sorted([late, unannounced])
    assert on_time not in overdue


class SlowTable:
    """The job table, with each write taking `seconds` of the fake clock."""

    def __init__(self, jobs, clock: FakeClock, seconds: float):
        self._jobs, self._clock, self._seconds = jobs, clock, seconds
        self.progress_writes = 0

    def record_progress(self, *args, **kwargs):
        self.progress_writes += 1
        self._clock.sleep(self._seconds)
        return self._jobs.record_progress(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._jobs, name)


def test_the_wait_counts_from_the_upstreams_answer_not_from_the_end_of_the_turn(job, jobs, images, clock):
    slow = SlowTable(jobs, clock, seconds=1.2)

    answer = step(job, slow, images, ScriptedNovita(running(eta=20, progress=10)), clock)

    # Wake at history's median end (no history: the prior's), less the 1.2 s spent writing.
    assert answer["wait_seconds"] == round(Durations(DEFAULT_TASK_SECONDS).expected_end(0) - 1.2)


def test_a_turn_that_saw_nothing_new_writes_its_progress_once(job, jobs, images, clock):
    slow = SlowTable(jobs, clock, seconds=0)

    step(job, slow, images, ScriptedNovita(running(eta=20, progress=10)), clock)

    assert slow.progress_writes == 1
    stored = jobs.get(job.job_id)
    assert (stored.status, stored.progress, stored.eta_seconds) == ("processing", 10, LATEST_PLAUSIBLE)


def test_a_cancel_made_while_the_step_polls_fast_ends_the_turn_as_canceled(job, jobs, images, clock):
    class CanceledMidway(ScriptedNovita):
        def get_task_result(self, task_id: str, *, within: float | None = None) -> TaskResult:
            if self.polls == 3:
                jobs.cancel(job.job_id)
            return super().get_task_result(task_id, within=within)

    # Processing from the first answer, unchanged while polled fast, and never done this turn.
    answer = step(job, jobs, images, CanceledMidway(running(eta=1)), clock)

    assert answer["status"] == "canceled"
    assert jobs.get(job.job_id).status == "canceled"


def test_the_eta_is_dated_from_the_upstreams_answer(job, jobs, images, clock):
    slow = SlowTable(jobs, clock, seconds=1.2)
    clock.now -= 60  # the record's updated_at is the real clock's: kept apart from the answer's time
    answered = clock.now

    step(job, slow, images, ScriptedNovita(running(eta=20, progress=10)), clock)

    stored = jobs.get(job.job_id)
    assert stored.eta_at == iso(datetime.fromtimestamp(answered, UTC))
    assert stored.updated_at != stored.eta_at


# --- A turn within the execution's time (zimage.workflow.timing) ---------------------------------------


def test_no_call_is_given_more_time_than_the_execution_has_left(job, jobs, images, clock):
    # GIVEN an execution 20 s from its hard timeout: 10 s are kept for the event, 5 for storing
    novita = ScriptedNovita(running(eta=1), running(eta=1), done())

    # WHEN a turn polls fast and downloads the image
    answer = step(job, jobs, images, novita, clock, execution_deadline=clock.now + 20)

    # THEN it stores the image, and no call was allowed past 5 s from the turn's start
    assert answer["status"] == "succeeded"
    assert novita.downloads == 1
    assert novita.given and all(0 < within <= 5 for within in novita.given)


def test_a_turn_never_polls_past_the_functions_own_timeout(job, jobs, images, clock):
    novita = ScriptedNovita(running(eta=2))

    answer = step(job, jobs, images, novita, clock, function_ends_in=7)

    assert answer["status"] == "pending"
    assert all(within <= 2 for within in novita.given)  # 7 s less the 5 s kept for storing


def test_a_task_found_done_too_late_in_a_turn_is_stored_by_the_next_turn(job, jobs, images, clock):
    # GIVEN a turn whose function is about to time out (a retried turn, say)
    novita = ScriptedNovita(done())

    # WHEN the task has ended but too little time is left to download its image
    answer = step(job, jobs, images, novita, clock, function_ends_in=5 + 2)

    # THEN nothing is started: the workflow comes back after the shortest Wait, and the next turn
    # stores it
    assert (answer["status"], answer["wait_seconds"], novita.downloads) == ("pending", 1, 0)
    again = step(job, jobs, images, novita, clock, polls=answer["polls"])
    assert again["status"] == "succeeded"


def test_an_image_sent_inline_is_stored_even_late_in_a_turn(job, jobs, images, clock):
    # GIVEN a turn with too little time left to download, and an upstream that sends base64 data
    novita = ScriptedNovita(done(location=base64.b64encode(picture(320, 256)).decode()))

    answer = step(job, jobs, images, novita, clock, function_ends_in=5 + 2)

    # THEN the image it already holds is stored, not thrown away for the next turn to ask again
    assert answer["status"] == "succeeded" and novita.polls == 1


def test_a_turn_that_finds_the_task_running_never_builds_the_image_store(job, jobs, clock):
    def no_store():
        raise AssertionError("a pending turn built the image store")

    answer = step(job, jobs, no_store, ScriptedNovita(running(eta=20)), clock)

    assert answer["status"] == "pending"


def test_a_task_is_learned_once_when_the_turn_that_found_it_ended_is_retried(job, jobs, images, clock):
    # GIVEN a turn that finds the task ended but cannot download its image
    novita = ScriptedNovita(done(), image=UpstreamRejected("the image URL answered HTTP 403", status=403))
    durations = Durations(DEFAULT_TASK_SECONDS)
    with pytest.raises(ImageUnavailable):
        step(job, jobs, images, novita, clock, durations=durations, submitted_at=clock.now - 4)

    # WHEN the workflow retries the turn, a moment later, and the download works
    clock.sleep(2.0)
    novita.image = picture(320, 256)
    answer = step(job, jobs, images, novita, clock, durations=durations, submitted_at=clock.now - 6)

    # THEN the task's end is in the history once, from the turn that first found it
    assert answer["status"] == "succeeded"
    assert durations.learned == 1


def test_a_turn_past_the_deadline_without_time_for_a_call_fails_the_job_as_timeout(job, jobs, images, clock):
    novita = ScriptedNovita(done())

    answer = step(job, jobs, images, novita, clock, deadline_in=-1, execution_deadline=clock.now + 12)

    assert answer["error"]["code"] == "timeout"
    assert novita.polls == 0


def test_an_execution_that_died_after_the_turn_ended_the_job_still_yields_its_event(job, jobs, images, clock):
    """A turn that ran past its execution's hard timeout: the job is recorded as ended, but the
    Emit state never runs. The job stays in the sweeper's index until its event is out."""
    from zimage.workflow.sweeper import sweep

    from .test_sweeper import EventBus

    # GIVEN a job listed for the sweeper, as every submit lists it, and a turn that stored its image
    jobs.create(job.with_changes(job_id=job.job_id + "X", active_shard=active_shard_for(job.job_id + "X")))
    late = jobs.get(job.job_id + "X")
    answer = step(late, jobs, images, ScriptedNovita(done()), clock)
    assert answer["status"] == "succeeded"
    assert jobs.get(late.job_id).active_shard is not None

    # WHEN the execution died there (no Emit state ran), and the sweeper runs once its time is over
    bus = EventBus()
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=0) == (0, 1)

    # THEN the event is out, once, about that job, and the job leaves the index
    assert bus.detail_types(late.job_id) == ["Image Generation Succeeded"]
    assert jobs.get(late.job_id).active_shard is None
    assert sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=0) == (0, 0)


def test_a_repeated_event_carries_the_same_job(job, jobs, images, clock):
    """Events are at least once: the workflow sent the event, but the execution died before
    MarkAnnounced, so the sweeper sends it again. Consumers deduplicate on the job's id."""
    from zimage.workflow.sweeper import sweep

    from .test_sweeper import EventBus

    jobs.create(job.with_changes(job_id=job.job_id + "Y", active_shard=active_shard_for(job.job_id + "Y")))
    answer = step(jobs.get(job.job_id + "Y"), jobs, images, ScriptedNovita(done()), clock)
    workflow_event = answer["event"]  # what AnnounceSucceeded sent

    bus = EventBus()
    sweep(jobs=jobs, events_client=bus, bus_name="b", stale_after_seconds=0)

    (repeat,) = [json.loads(entry["Detail"]) for entry in bus.sent]
    assert repeat["id"] == workflow_event["id"] == job.job_id + "Y"
    assert repeat["status"] == workflow_event["status"] == "succeeded"
    assert repeat["image"]["sha256"] == workflow_event["image"]["sha256"]


@pytest.mark.parametrize(
    ("verdicts_before", "eta_end", "last_running_ago", "trusted"),
    [
        ((False,), 10.0, 0.3, True),  # right within its second: found right, trusted again
        ((True, False), 1.0, 0.3, False),  # still running past it: found wrong
        ((True, False), 1.0, 5.0, True),  # a long Wait between: not judged
    ],
    ids=["close-answers-inside-its-eta", "close-answers-past-its-eta", "a-long-wait-between"],
)
def test_an_eta_is_judged_when_the_answers_around_the_end_can_tell(
    job, jobs, images, clock, verdicts_before, eta_end, last_running_ago, trusted
):
    # GIVEN an upstream with these verdicts on its etas, and a task that said at first it would
    # end at eta_end, last found running last_running_ago before this turn
    durations = Durations(DEFAULT_TASK_SECONDS)
    for right in verdicts_before:
        durations.record_eta_verdict(right)
    state = {"submitted_at": clock.now - 10, "eta_end": eta_end, "last_pending_at": clock.now - last_running_ago}

    # WHEN a turn finds it done 10 s after the submit
    step(job, jobs, images, ScriptedNovita(done()), clock, durations=durations, **state)

    # THEN the verdict moves the trust; a long Wait between the answers judges nothing, since it
    # could prove an eta wrong but never right
    assert durations.eta_trusted() is trusted
    assert durations.learned == 1  # its duration is learned either way


# --- an image link that no longer answers --------------------------------------------------------


def test_the_retry_of_a_turn_whose_image_link_refused_asks_the_upstream_for_a_fresh_one(job, jobs, images, clock):
    class ExpiredFirst(ScriptedNovita):
        def download_image(self, url: str, **kwargs) -> bytes:
            if url == "https://cdn/expired.jpeg":
                self.downloads += 1
                raise UpstreamRejected("the image URL answered HTTP 403", status=403)
            return super().download_image(url, **kwargs)

    # GIVEN an upstream whose first answer names a link that has expired
    novita = ExpiredFirst(done("https://cdn/expired.jpeg"), done("https://cdn/fresh.jpeg"))

    # WHEN the turn fails on it and the workflow retries the turn with the same input
    with pytest.raises(ImageUnavailable):
        step(job, jobs, images, novita, clock)
    answer = step(job, jobs, images, novita, clock)

    # THEN the retry asks again and stores the image from the fresh link
    assert answer["status"] == "succeeded"
    assert (novita.polls, novita.downloads) == (2, 2)


# --- a turn writes only what shows clients something new ------------------------------------------


def next_turn(answer: dict) -> dict:
    """The state the workflow hands the next turn: the answer, less what step() sets itself."""
    return {k: v for k, v in answer.items() if k not in ("job_id", "task_id", "size", "deadline")}


def test_a_turn_whose_answer_shows_nothing_new_reads_the_job_instead_of_writing_it(job, jobs, images, clock):
    # GIVEN a first turn that found the task processing, due to end in 10 s
    first = step(job, jobs, images, ScriptedNovita(running(eta=10)), clock)
    written = jobs.get(job.job_id)

    # WHEN a later turn hears the same end (3 s on, 7 s to go)
    clock.sleep(3)
    second = step(job, jobs, images, ScriptedNovita(running(eta=7)), clock, **next_turn(first))

    # THEN the record is as the first turn wrote it, and the turn goes on
    assert second["status"] == "pending"
    assert jobs.get(job.job_id).updated_at == written.updated_at
    assert jobs.get(job.job_id).eta_at == written.eta_at


def test_a_turn_whose_answer_moves_the_end_writes_it(job, jobs, images, clock):
    first = step(job, jobs, images, ScriptedNovita(running(eta=5)), clock)
    written = jobs.get(job.job_id)

    clock.sleep(3)  # 3 s on, and the upstream now says 8 s more: the end moved by 6 s
    step(job, jobs, images, ScriptedNovita(running(eta=8, progress=40)), clock, **next_turn(first))

    assert jobs.get(job.job_id).eta_at != written.eta_at
    assert jobs.get(job.job_id).progress == 40


def test_a_task_past_every_one_seen_keeps_the_eta_it_showed_not_one_the_schedule_ignores(job, jobs, images, clock):
    # GIVEN tasks that took 3.8 to 4.18 s, an upstream whose etas were lately wrong, and a task
    # still running 3 s after its submit
    durations = Durations(DEFAULT_TASK_SECONDS)
    for n in range(20):
        durations.add(3.8 + 0.02 * n)
    for _ in range(4):
        durations.record_eta_verdict(False)
    submitted_at = clock.now - 3

    # WHEN a turn hears "9 s more", and two more turns, past every task seen, hear "1 s more", as
    # a lying upstream says past its claim
    first = step(
        job, jobs, images, ScriptedNovita(running(eta=9)), clock, durations=durations, submitted_at=submitted_at
    )
    written = jobs.get(job.job_id)
    clock.sleep(2)
    second = step(job, jobs, images, ScriptedNovita(running(eta=1)), clock, durations=durations, **next_turn(first))
    clock.sleep(1)
    step(job, jobs, images, ScriptedNovita(running(eta=1)), clock, durations=durations, **next_turn(second))

    # THEN the job shows history's eta, never the upstream's, and the later turns, which have
    # nothing new to show, write nothing: the record keeps the eta it showed, counting down
    assert written.eta_seconds == 1  # history's median end, about 4 s after the submit
    assert jobs.get(job.job_id).updated_at == written.updated_at
    assert jobs.get(job.job_id).eta_at == written.eta_at


def test_the_read_of_a_turn_that_writes_nothing_still_notices_a_cancel(job, jobs, images, clock):
    first = step(job, jobs, images, ScriptedNovita(running(eta=10)), clock)
    jobs.cancel(job.job_id)

    clock.sleep(3)
    second = step(job, jobs, images, ScriptedNovita(running(eta=7)), clock, **next_turn(first))

    assert second["status"] == "canceled"


# --- the handler's metrics ------------------------------------------------------------------------


class RecordedMetrics:
    def __init__(self) -> None:
        self.added: list[tuple[str, float]] = []

    def add_metric(self, *, name: str, unit: object, value: float) -> None:
        self.added.append((name, value))


class Context:
    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


def test_the_handler_counts_a_job_it_ends_and_the_polls_it_took_and_nothing_while_it_runs(job, jobs, images):
    from types import SimpleNamespace

    from zimage.settings import Settings
    from zimage.workflow.poll import run_step

    def runtime(novita: ScriptedNovita) -> SimpleNamespace:
        return SimpleNamespace(settings=Settings.from_env(), novita=novita, jobs=jobs, images=images)

    state = {"job_id": job.job_id, "task_id": "t-1", "size": SIZE, "deadline": 4e9, "polls": 2}
    durations, metrics = Durations(DEFAULT_TASK_SECONDS), RecordedMetrics()

    pending = run_step(
        state, Context(), runtime=runtime(ScriptedNovita(running(eta=20))), durations=durations, metrics=metrics
    )
    assert pending["status"] == "pending" and metrics.added == []

    ended = run_step(state, Context(), runtime=runtime(ScriptedNovita(done())), durations=durations, metrics=metrics)
    assert ended["status"] == "succeeded"
    assert metrics.added == [("JobsSucceeded", 1), ("PollsPerJob", 3)]  # this turn's poll counts
