"""A call given `within` seconds ends within them: urllib3 bounds each attempt and each socket
read, never a whole call, so the client holds an attempt's connect and read to the time given and
makes a retry only while a whole attempt still fits. No sockets: the retry decisions are made on
urllib3's own Retry objects."""

from __future__ import annotations

import math
import time

import pytest
from urllib3.exceptions import MaxRetryError, NewConnectionError

from zimage.upstream.novita import CappedRetry, NovitaClient, read_retry


@pytest.fixture
def novita() -> NovitaClient:
    return NovitaClient("https://api.novita.ai", "key", connect_timeout=3, read_timeout=10, body_seconds=30)


def refused() -> NewConnectionError:
    return NewConnectionError(None, "connection refused")  # type: ignore[arg-type]


def test_without_a_bound_the_call_keeps_its_own_timeouts_and_retries(novita):
    plan = novita.plan_call(read_retry(3), None)

    assert (plan.timeout.connect_timeout, plan.timeout.read_timeout, plan.retries.total) == (3, 10, 3)
    assert (plan.ends_at, plan.body_seconds, plan.retries.ends_at) == (math.inf, 30, math.inf)


@pytest.mark.parametrize("within", [0.5, 2, 5, 14, 60])
def test_one_attempt_and_the_body_fit_in_the_time_given(novita, within):
    plan = novita.plan_call(read_retry(3), within)

    assert plan.timeout.total == within
    assert plan.retries.attempt_seconds == min(3 + 10, within)
    assert plan.body_seconds == min(30, within)
    assert 0 <= plan.body_seconds_left() <= within


def test_quick_failures_keep_every_retry_while_a_whole_attempt_fits(novita):
    retry = novita.plan_call(read_retry(3), 60).retries

    for _ in range(3):  # a refused connection fails at once: each retry still leaves 13 s
        retry = retry.increment("GET", "/v3/async/task-result", error=refused())

    with pytest.raises(MaxRetryError):  # the fourth is beyond the three retries anyway
        retry.increment("GET", "/v3/async/task-result", error=refused())


def test_no_retry_is_made_that_a_whole_attempt_would_outlast(novita):
    # GIVEN 14 s for the call: the first attempt may take 13 s (3 s to connect, 10 s to read)
    retry = novita.plan_call(read_retry(3), 14).retries
    # WHEN it fails after 2 s, 12 s are left: too few for another 13 s attempt
    retry = retry.new(ends_at=time.monotonic() + 12)

    with pytest.raises(MaxRetryError, match="connection refused"):
        retry.increment("GET", "/v3/async/task-result", error=refused())


def test_the_wait_before_a_retry_counts_at_its_longest():
    retry = CappedRetry(total=3, backoff_factor=1, backoff_max=8, backoff_jitter=0.5)
    for _ in range(2):
        retry = retry.increment("GET", "/x", error=refused())

    assert retry.longest_wait() == 1 * 2 ** (2 - 1) + 0.5  # urllib3's back-off, with all its jitter


def test_no_time_at_all_plans_one_attempt_that_gives_up_at_once(novita):
    plan = novita.plan_call(read_retry(3), -1)

    assert plan.body_seconds_left() <= 0.001
    with pytest.raises(MaxRetryError):
        plan.retries.increment("GET", "/x", error=refused())
