"""The poll schedule: the planner alone, then whole jobs followed turn by turn on a fake clock
against an upstream whose task ends at a known moment (no history, rich history, a lying eta,
outliers)."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from zimage.jobs.durations import PRIOR_DROPPED_AFTER, Durations
from zimage.upstream.novita import TaskResult, TaskStatus, UpstreamImage
from zimage.workflow.poll import PollDependencies, poll
from zimage.workflow.schedule import (
    PollPolicy,
    believed_end,
    eta_verdict,
    expected_remaining_seconds,
    next_poll_in,
    sleeps_in_lambda,
    wait_seconds,
)

from ..conftest import FakeClock, a_job, picture

POLICY = PollPolicy(
    min_wait_seconds=1, max_wait_seconds=30, fast_poll_window_seconds=3, fast_poll_interval_seconds=0.25
)
SIZE = "320*256"


def history(*seconds: float, typical: float = 5.0, draw: random.Random | None = None) -> Durations:
    durations = Durations(typical, draw=draw)
    for value in seconds:
        durations.add(value)
    return durations


def typical_tasks(n: int = 40, low: float = 3.8, high: float = 4.2) -> list[float]:
    draw = random.Random(7)
    return [draw.uniform(low, high) for _ in range(n)]


# --- the upstream's word ------------------------------------------------------------------


def test_eta_is_the_best_estimate():
    assert expected_remaining_seconds(eta=7, progress=90, elapsed=10) == 7


def test_progress_gives_an_estimate_when_eta_is_zero():
    assert expected_remaining_seconds(eta=0, progress=25, elapsed=3) == pytest.approx(9)


@pytest.mark.parametrize(("eta", "progress"), [(0, 0), (None, None), (0, 100), (-1, -5)])
def test_no_estimate_when_the_upstream_says_nothing(eta, progress):
    assert expected_remaining_seconds(eta, progress, elapsed=3) is None


# --- what history says ------------------------------------------------------------------------


def test_before_any_history_the_prior_speaks():
    durations = Durations(4.0)

    assert durations.learned == 0
    assert 0.85 * 4.0 <= durations.expected_end(0) <= 4.0  # between the prior's middle samples


def test_the_prior_goes_once_enough_tasks_were_seen():
    durations = history(*[10.0] * PRIOR_DROPPED_AFTER, typical=2.0)

    assert durations.expected_end(0) == pytest.approx(10.0)


def test_quantiles_count_only_the_tasks_that_ran_that_long():
    durations = history(*[2.0] * 10, *[8.0] * 10)

    assert durations.expected_end(1) == pytest.approx(2.0, abs=0.1)
    assert durations.expected_end(3) == pytest.approx(8.0, abs=0.6)
    assert durations.quantile_after(9, 0.5) is None  # longer than all of them


def test_a_few_outliers_barely_move_the_median():
    usual = typical_tasks()

    assert history(*usual, 60, 90, 120).expected_end(0) == pytest.approx(history(*usual).expected_end(0), abs=0.05)


def test_nonsense_durations_are_not_learned():
    durations = history(0, -3, float("nan"))

    assert durations.learned == 0


def test_a_tasks_end_is_learned_inside_the_span_its_answers_bracket():
    durations = Durations(5.0, draw=random.Random(5))

    for _ in range(PRIOR_DROPPED_AFTER):
        durations.add_ended(3.8, 4.2)

    assert durations.learned == PRIOR_DROPPED_AFTER
    assert durations.quantile_after(0.0, 1 / PRIOR_DROPPED_AFTER) > 3.8  # the shortest learned
    assert durations.quantile_after(0.0, 1.0) <= 4.2  # the longest


def test_tasks_found_ended_after_a_long_wait_are_spread_over_it_not_piled_at_its_middle():
    durations = Durations(5.0, draw=random.Random(5))

    for _ in range(64):
        durations.add_ended(0.1, 4.1)

    # about a quarter of them in each quarter of the span, not all at its middle (2.1 s), nor
    # piled where the first ones were drawn (copies of copies)
    assert 0.6 <= durations.quantile_after(0.0, 0.25) <= 1.6
    assert 2.6 <= durations.quantile_after(0.0, 0.75) <= 3.6


def test_tasks_found_ended_after_a_long_wait_are_placed_half_the_time_where_history_saw_tasks_end():
    early = 0
    for seed in range(8):  # eight deployments: one draw is too few to tell half from all
        durations = history(*typical_tasks(), draw=random.Random(seed))  # 40 seen ending at 3.8-4.2 s
        for _ in range(12):
            durations.add_ended(0.1, 4.1)
        early += sum(durations.quantile_after(0.0, k / 52) < 3.5 for k in range(1, 53))

    # of the 96 found ended after the Wait: spread over all of it, about 82 would be learned
    # before 3.5 s, where no task ended; placed only where history's did, none would, and an
    # upstream grown faster would be found out only late
    assert 25 <= early <= 65


def test_an_end_placed_where_history_saw_tasks_end_stays_inside_its_span():
    durations = history(*typical_tasks(), draw=random.Random(1))  # 40 seen ending at 3.8-4.2 s

    for _ in range(24):
        durations.add_ended(0.1, 3.0)  # found ended by a first look at 3 s

    assert durations.quantile_after(0.0, 24 / 64) <= 3.0  # none copied from the later tasks


def test_an_upstream_whose_etas_were_mostly_wrong_is_not_trusted():
    durations = Durations(5.0)
    assert durations.eta_trusted()
    for right in (True, False, False, False):
        durations.record_eta_verdict(right)

    assert not durations.eta_trusted()


# --- the planner ------------------------------------------------------------------------------


def test_with_no_eta_the_first_wait_skips_the_time_no_task_ever_ended_in():
    gap = next_poll_in(0.2, history(*typical_tasks()), None, eta_trusted=True, policy=POLICY)

    assert 3.5 <= gap <= 4.0


def test_where_tasks_usually_end_the_polls_come_densely():
    gap = next_poll_in(3.9, history(*typical_tasks()), None, eta_trusted=True, policy=POLICY)

    assert gap == POLICY.fast_poll_interval_seconds


def test_past_every_task_seen_the_polls_back_off_with_how_far_past_the_longest():
    longest = max(typical_tasks())

    # a little longer than any seen: still looked at every second
    assert next_poll_in(longest + 0.5, history(*typical_tasks()), None, eta_trusted=True, policy=POLICY) == 1.0
    assert next_poll_in(20, history(*typical_tasks()), None, eta_trusted=True, policy=POLICY) == pytest.approx(
        (20 - longest) / 2
    )


def test_past_every_task_seen_a_trusted_eta_sets_the_wait():
    assert next_poll_in(20, history(*typical_tasks()), 40, eta_trusted=True, policy=POLICY) == 19
    # an untrusted one never lengthens it
    assert next_poll_in(20, history(*typical_tasks()), 40, eta_trusted=False, policy=POLICY) == pytest.approx(
        (20 - max(typical_tasks())) / 2
    )


def test_a_trusted_eta_shortens_the_wait_to_its_last_second():
    durations = history(*typical_tasks(low=1, high=10))

    assert next_poll_in(0.2, durations, 2.2, eta_trusted=True, policy=POLICY) == pytest.approx(1.0)


def test_an_eta_earlier_than_history_finds_plausible_earns_one_look():
    assert next_poll_in(0.2, history(*typical_tasks()), 2.2, eta_trusted=True, policy=POLICY) == pytest.approx(2.0)


def test_an_eta_lengthens_the_wait_only_to_the_median_of_history():
    durations = history(*typical_tasks())

    gap = next_poll_in(0.2, durations, 30, eta_trusted=True, policy=POLICY)

    assert gap == pytest.approx(durations.expected_end(0.2) - 0.2)


def test_an_implausible_eta_earns_one_look_at_the_end_it_named_and_no_fast_polling():
    durations = history(*typical_tasks())

    assert next_poll_in(0.2, durations, 1.2, eta_trusted=True, policy=POLICY) == pytest.approx(1.0)
    # inside its last second, a plausible eta is polled fast; an implausible one waits for its end
    assert next_poll_in(1.0, history(*typical_tasks(low=1, high=10)), 1.6, eta_trusted=True, policy=POLICY) == 0.25
    assert next_poll_in(1.0, durations, 1.6, eta_trusted=True, policy=POLICY) == pytest.approx(0.6)


@pytest.mark.parametrize("eta_end", [1.2, 4.0, 30.0], ids=["too-short", "plausible", "too-long"])
def test_the_etas_of_an_upstream_not_trusted_change_no_wait(eta_end):
    durations = history(*typical_tasks())

    without = next_poll_in(0.2, durations, None, eta_trusted=False, policy=POLICY)

    assert next_poll_in(0.2, durations, eta_end, eta_trusted=False, policy=POLICY) == without


@pytest.mark.parametrize(
    ("running_at", "ended_by", "verdict"),
    [
        (4.6, 4.9, True),  # inside the second it named
        (3.5, 3.9, True),  # etas are rounded up: up to a second early is right
        (5.6, 5.9, False),  # still running past it
        (1.0, 2.0, False),  # ended before it opened
        (3.0, 3.8, None),  # straddling its edge
        (0.1, 4.9, None),  # a Wait spanning it cannot tell
        (4.6, 9.0, None),
        (0.1, 2.2, None),  # a Wait as long as it could never have found it right: not judged
        (6.0, 9.0, None),
    ],
)
def test_an_eta_is_judged_by_the_answers_around_the_tasks_end(running_at, ended_by, verdict):
    assert eta_verdict(5.0, running_at, ended_by) is verdict


def test_waits_are_whole_seconds_inside_min_and_max_and_the_deadline():
    assert wait_seconds(3.4, 100, POLICY) == 3
    assert wait_seconds(3.6, 100, POLICY) == 4
    assert wait_seconds(0.1, 100, POLICY) == 1
    assert wait_seconds(500, 100, POLICY) == 30
    assert wait_seconds(20, 4.2, POLICY) == 5


def test_a_gap_of_most_of_a_second_goes_to_a_wait_not_to_the_lambda_held():
    # from 0.7 s on a turn costs less than the Lambda held through the gap
    assert sleeps_in_lambda(0.69)
    assert not sleeps_in_lambda(0.7)
    assert wait_seconds(0.7, 100, POLICY) == 1


def test_with_no_eta_clients_are_told_the_historys_median():
    assert history(*[6.0] * 20).eta_seconds(1.0) == 5


# --- whole jobs, on a fake clock -------------------------------------------------------------


class TimedTask:
    """An upstream task that ends `seconds` after it started on the fake clock; `eta` makes the
    eta it reports from the true remaining time (0: it says nothing)."""

    def __init__(self, clock: FakeClock, seconds: float, eta=lambda remaining: 0):
        self.clock, self.ends, self.eta = clock, clock.now + seconds, eta
        self.polls = 0

    def get_task_result(self, task_id: str, *, within: float | None = None) -> TaskResult:
        self.polls += 1
        if self.clock.now >= self.ends:
            image = UpstreamImage(location="https://cdn.example/img.jpeg", image_type="jpeg")
            return TaskResult(status=TaskStatus.SUCCEED, images=(image,), seed=1)
        remaining = self.ends - self.clock.now
        return TaskResult(status=TaskStatus.PROCESSING, eta_seconds=self.eta(remaining), progress_percent=0)

    def download_image(self, url: str, *, max_bytes: int, within: float | None = None) -> bytes:
        return picture(320, 256)


class Followed:
    def __init__(self, answer: dict, lag: float, polls: int, waits: list[int], slept: float):
        self.answer, self.lag, self.polls, self.waits, self.slept = answer, lag, polls, waits, slept

    @property
    def turns(self) -> int:
        return len(self.waits) + 1


def follow(
    jobs, images, clock: FakeClock, task: TimedTask, durations: Durations, turn_overhead: float = 0.0
) -> Followed:
    """Run the job's turns as the state machine would: each Wait moves the clock, and each turn
    after it starts `turn_overhead` later (the transition and the Lambda call)."""
    job = a_job(size=SIZE)
    jobs.create(job)
    slept = [0.0]

    def sleep(seconds: float) -> None:
        slept[0] += seconds
        clock.sleep(seconds)

    deps = PollDependencies(
        novita=task,
        jobs=jobs,
        images=lambda: images,
        max_image_bytes=5_000_000,
        presigned_url_seconds=60,
        policy=POLICY,
        clock=clock,
        sleep=sleep,
        durations=durations,
    )
    state = {"job_id": job.job_id, "task_id": "t-1", "size": SIZE, "submitted_at": clock.now, "polls": 0}
    state["deadline"] = clock.now + 200
    waits = []
    while True:
        answer = poll(state, deps)
        if answer["status"] != "pending":
            return Followed(answer, clock.now - task.ends, task.polls, waits, slept[0])
        waits.append(answer["wait_seconds"])
        clock.now += answer["wait_seconds"] + turn_overhead
        state = answer


def truthful(remaining: float) -> int:
    return math.ceil(remaining)


def test_with_no_history_and_no_eta_a_task_is_still_seen_within_a_second(jobs, images, clock):
    durations = Durations(5.0)

    followed = follow(jobs, images, clock, TimedTask(clock, 4.1), durations)

    assert followed.answer["status"] == "succeeded"
    assert 0 <= followed.lag <= 1.0
    assert followed.polls <= 8
    assert durations.learned == 1  # and the next job knows a little more


def test_with_rich_history_and_no_eta_a_usual_task_is_seen_at_once_in_few_polls(jobs, images, clock):
    durations = history(*typical_tasks())

    followed = follow(jobs, images, clock, TimedTask(clock, 4.05), durations)

    assert followed.lag <= POLICY.fast_poll_interval_seconds
    assert followed.polls <= 5
    assert followed.turns == 2  # the first poll at once, then one Wait to where tasks end
    assert followed.slept <= 1.0  # the Lambda is held only where tasks usually end


def test_a_truthful_eta_is_followed_to_its_last_second(jobs, images, clock):
    durations = history(*typical_tasks(low=1, high=10))

    followed = follow(jobs, images, clock, TimedTask(clock, 6.4, eta=truthful), durations)

    assert followed.lag <= POLICY.fast_poll_interval_seconds
    assert followed.polls <= 6


@pytest.mark.parametrize("lie", [0.25, 3.0], ids=["too-short", "too-long"])
def test_a_lying_eta_costs_a_poll_or_two_and_never_the_task(jobs, images, clock, lie):
    durations = history(*typical_tasks())
    other_clock = FakeClock()
    honest = follow(jobs, images, other_clock, TimedTask(other_clock, 4.05), history(*typical_tasks()))

    followed = follow(jobs, images, clock, TimedTask(clock, 4.05, eta=lambda r: math.ceil(r * lie)), durations)

    assert followed.lag <= 0.5
    assert followed.polls <= honest.polls + 2
    assert followed.slept <= honest.slept + 1.0


@pytest.mark.parametrize("lie", [0.25, 3.0], ids=["too-short", "too-long"])
def test_a_lying_upstream_once_found_out_costs_no_poll_at_all(jobs, images, clock, lie):
    durations = history(*typical_tasks())
    for _ in range(4):
        durations.record_eta_verdict(False)
    other_clock = FakeClock()
    honest = follow(jobs, images, other_clock, TimedTask(other_clock, 4.05), history(*typical_tasks()))

    followed = follow(jobs, images, clock, TimedTask(clock, 4.05, eta=lambda r: math.ceil(r * lie)), durations)

    assert (followed.polls, followed.turns) == (honest.polls, honest.turns)
    assert followed.lag == pytest.approx(honest.lag)


def test_an_eta_proved_wrong_is_ignored_for_the_rest_of_the_job(jobs, images, clock):
    durations = history(*typical_tasks())
    task = TimedTask(clock, 4.05, eta=lambda remaining: 1)  # always a second more

    followed = follow(jobs, images, clock, task, durations)

    assert followed.lag <= 0.5
    assert followed.polls <= 6


def test_tasks_found_ended_after_a_long_wait_do_not_drag_the_schedule_early(jobs, images, clock):
    # GIVEN tasks of 3.5-4.5 s and no eta, followed one after another from the prior alone, each
    # turn starting a little after its Wait: the tasks that end during the first Wait are only
    # known to have ended somewhere within it
    durations = Durations(5.0, draw=random.Random(0))
    draw = random.Random(100)
    first_waits = []
    for _ in range(100):
        task = TimedTask(clock, draw.uniform(3.5, 4.5))
        first_waits.append(follow(jobs, images, clock, task, durations, turn_overhead=0.3).waits[0])

    # THEN history stays where tasks end, and the first Wait keeps skipping the stretch none ends
    # in (where within its Wait each such end is placed is pinned above, on Durations alone)
    assert 3.75 <= durations.expected_end(0.0) <= 4.25
    assert min(first_waits[20:]) >= 3


def test_an_upstream_grown_faster_is_found_out(jobs, images, clock):
    # GIVEN a full history of tasks of 3.5-4.5 s, and no eta
    draw = random.Random(100)
    durations = history(*(draw.uniform(3.5, 4.5) for _ in range(64)), draw=random.Random(0))

    # WHEN the upstream's tasks take 1.0-1.5 s from now on: each is found ended by the first poll
    # after a Wait planned for the old ones, and the answers cannot tell where within it
    lags = [
        follow(jobs, images, clock, TimedTask(clock, draw.uniform(1.0, 1.5)), durations, turn_overhead=0.05).lag
        for _ in range(100)
    ]

    # THEN the Waits shorten to the new tasks (placed where the old ones ended, they would stay
    # about 3 s late until they had replaced all of history)
    assert statistics.mean(lags[-20:]) <= 0.5


def early_pulled_history() -> Durations:
    """Tasks seen ending from 3.8 s on by close polls, and more found ended by a first look at 4.1 s, half
    of them learned spread over that first Wait: history's quarter falls below 3.5 s, where none
    ends."""
    durations = Durations(5.0, draw=random.Random(3))
    for n in range(24):
        durations.add_ended(3.8 + n * 0.02, 4.0 + n * 0.02)
    for _ in range(30):
        durations.add_ended(0.1, 4.1)
    return durations


def test_a_first_wait_that_ends_before_tasks_do_costs_a_turn_not_the_lambda_held(jobs, images, clock):
    durations = early_pulled_history()
    assert 3.0 < next_poll_in(0.0, durations, None, eta_trusted=True, policy=POLICY) < 3.5

    followed = follow(jobs, images, clock, TimedTask(clock, 4.2), durations)

    assert followed.waits == [3, 1]  # the look at 3 s finds it running: a second Wait, not a second slept
    assert followed.slept <= 2 * POLICY.fast_poll_interval_seconds
    assert followed.lag <= POLICY.fast_poll_interval_seconds


def test_a_first_wait_planned_a_little_past_a_whole_second_is_rounded_to_it(jobs, images, clock):
    durations = history(*typical_tasks(low=4.0, high=4.6))
    assert 4.0 < next_poll_in(0.0, durations, None, eta_trusted=True, policy=POLICY) < 4.5

    followed = follow(jobs, images, clock, TimedTask(clock, 4.2), durations)

    assert followed.waits[0] == 4  # not 5 s, which would see this task most of a second late
    assert followed.lag <= POLICY.fast_poll_interval_seconds


def test_a_trusted_eta_may_still_name_an_end_earlier_than_any_seen(jobs, images, clock):
    durations = early_pulled_history()

    # an eta that names the end a little late: its last second opens 2.1 s from now
    followed = follow(jobs, images, clock, TimedTask(clock, 2.5, eta=lambda remaining: remaining + 0.6), durations)

    assert followed.waits[0] == 2  # to where its last second opens, though no task seen ended so early
    assert followed.lag <= POLICY.fast_poll_interval_seconds


def test_outliers_in_history_leave_the_usual_task_unharmed(jobs, images, clock):
    usual = typical_tasks(36)
    durations = history(*usual, 25, 40, 60, 90)

    followed = follow(jobs, images, clock, TimedTask(clock, 4.05), durations)

    assert followed.lag <= POLICY.fast_poll_interval_seconds
    assert followed.polls <= 5


def test_a_slow_task_is_followed_by_one_second_waits_not_by_a_lambda_held(jobs, images, clock):
    # GIVEN history where most tasks take about 4 s and a few 8 to 10 s
    durations = history(*typical_tasks(34), 8.0, 8.4, 8.8, 9.2, 9.6, 10.0)

    # WHEN a slow task of 9 s is followed
    followed = follow(jobs, images, clock, TimedTask(clock, 9.0), durations, turn_overhead=0.05)

    # THEN the Lambda sleeps only where most tasks end; among the few slow ones each look is most
    # of a second from the last, so a turn after a one-second Wait, and the task is seen within a
    # second of its end
    assert followed.slept <= 1.0
    assert followed.waits[1:] == [1] * (len(followed.waits) - 1)
    assert 0 <= followed.lag <= 1.0 + 0.05


def test_an_outlier_task_is_polled_sparsely_past_everything_seen(jobs, images, clock):
    durations = history(*typical_tasks())

    followed = follow(jobs, images, clock, TimedTask(clock, 40), durations)

    assert followed.answer["status"] == "succeeded"
    assert followed.lag <= 0.5 * (40 - max(typical_tasks()))  # at most half as long as it is past the longest
    assert followed.polls <= 14


def test_clients_are_shown_the_eta_history_finds_plausible():
    durations = history(*typical_tasks())

    assert believed_end(0.2, durations, None) == durations.expected_end(0.2)
    assert believed_end(0.2, durations, 4.0) == 4.0
    assert 4.0 < believed_end(0.2, durations, 30.0) <= 4.2  # a lie too long, brought inside history
    assert 3.8 <= believed_end(0.2, durations, 1.0) < 4.0  # a lie too short likewise
    assert believed_end(20, durations, 25.0) == 25.0  # past everything seen, the eta is all there is
