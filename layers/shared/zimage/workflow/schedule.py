"""When to ask the upstream again: small pure functions, so the policy is tested without AWS.

The state machine's Wait state costs a transition per turn, while a Lambda that is already
running costs little for a few more seconds. So the poll function polls quickly in-process when
the task is expected to end soon, and hands back a Wait only for the long stretches.
"""

from __future__ import annotations

import math
from typing import NamedTuple


class PollPolicy(NamedTuple):
    min_wait_seconds: int = 1
    max_wait_seconds: int = 30
    fast_poll_window_seconds: float = 3.0
    fast_poll_interval_seconds: float = 0.25


def expected_remaining_seconds(eta: float | None, progress: float | None, elapsed: float) -> float | None:
    """The upstream's best word on how long the task still needs; None when it says nothing
    (for many models eta and progress stay 0)."""
    if eta is not None and eta > 0:
        return float(eta)
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        return elapsed * (100 - progress) / progress
    return None


def should_poll_fast(remaining: float | None, policy: PollPolicy) -> bool:
    """Unknown counts as soon: this model usually ends within seconds."""
    return remaining is None or remaining <= policy.fast_poll_window_seconds


# Upstream etas come in whole seconds, so a task may end up to this long after its eta says.
ETA_GRANULARITY_SECONDS = 1.0


def fast_poll_until(started: float, answered_at: float, remaining: float | None, policy: PollPolicy) -> float:
    """When one call stops polling fast: the window from the call's start, stretched to cover the
    expected end (remaining, as of answered_at) with the eta's rounding, and never past twice the
    window, so a wrong eta cannot hold the Lambda. Without the stretch a task expected right at the
    window's edge ends just after it and costs a whole Wait turn."""
    window = policy.fast_poll_window_seconds
    until = started + window
    if remaining is not None:
        until = max(until, answered_at + remaining + ETA_GRANULARITY_SECONDS)
    return min(until, started + 2 * window)


def next_wait_seconds(remaining: float | None, polls: int, time_left: float, policy: PollPolicy) -> int:
    """Seconds for the Wait state (a whole number, as ASL requires), never past the deadline."""
    if remaining is None:
        wait = policy.min_wait_seconds * 2 ** min(polls, 5)  # the upstream says nothing: back off
    else:
        # Wake a little before the expected end; the fast in-Lambda polling covers the rest.
        wait = remaining - policy.fast_poll_window_seconds / 2
    wait = min(max(math.ceil(wait), policy.min_wait_seconds), policy.max_wait_seconds)
    return max(1, min(wait, math.ceil(max(time_left, 0))))
