from __future__ import annotations

import pytest

from zimage.workflow.schedule import (
    PollPolicy,
    expected_remaining_seconds,
    fast_poll_until,
    next_wait_seconds,
    should_poll_fast,
)

POLICY = PollPolicy(min_wait_seconds=1, max_wait_seconds=30, fast_poll_window_seconds=3)


def test_eta_is_the_best_estimate():
    assert expected_remaining_seconds(eta=7, progress=90, elapsed=10) == 7


def test_progress_gives_an_estimate_when_eta_is_zero():
    assert expected_remaining_seconds(eta=0, progress=25, elapsed=3) == pytest.approx(9)


@pytest.mark.parametrize(("eta", "progress"), [(0, 0), (None, None), (0, 100), (-1, -5)])
def test_no_estimate_when_the_upstream_says_nothing(eta, progress):
    assert expected_remaining_seconds(eta, progress, elapsed=3) is None


def test_unknown_or_near_ends_are_polled_fast_in_the_lambda():
    assert should_poll_fast(None, POLICY)
    assert should_poll_fast(2.5, POLICY)
    assert not should_poll_fast(10, POLICY)


def test_a_known_eta_wakes_just_before_the_end():
    assert next_wait_seconds(remaining=20, polls=1, time_left=600, policy=POLICY) == 19


def test_an_unknown_end_backs_off_exponentially_to_the_cap():
    waits = [next_wait_seconds(None, polls, 600, POLICY) for polls in range(8)]

    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]


def test_the_wait_never_passes_the_deadline():
    assert next_wait_seconds(remaining=100, polls=1, time_left=4.2, policy=POLICY) == 5
    assert next_wait_seconds(remaining=100, polls=1, time_left=-3, policy=POLICY) == 1


def test_waits_stay_inside_min_and_max():
    assert next_wait_seconds(remaining=0.1, polls=1, time_left=600, policy=POLICY) == 1
    assert next_wait_seconds(remaining=10_000, polls=1, time_left=20_000, policy=POLICY) == 30


def test_fast_polling_lasts_the_window_when_the_end_is_unknown():
    assert fast_poll_until(started=100, answered_at=100, remaining=None, policy=POLICY) == 103


def test_fast_polling_stretches_past_an_eta_at_the_windows_edge():
    # eta 3 s at the start: the task may end up to a second later than that, so poll until then.
    assert fast_poll_until(started=100, answered_at=100.2, remaining=3, policy=POLICY) == pytest.approx(104.2)


def test_fast_polling_never_lasts_more_than_twice_the_window():
    assert fast_poll_until(started=100, answered_at=105.5, remaining=3, policy=POLICY) == 106


def test_no_window_means_no_fast_polling():
    no_window = PollPolicy(fast_poll_window_seconds=0)

    assert fast_poll_until(started=100, answered_at=100, remaining=2, policy=no_window) == 100
