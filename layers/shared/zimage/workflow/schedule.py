"""When to ask the upstream again: small pure functions, so the policy is tested without AWS.

Each poll is planned from how long tasks take (zimage.jobs.durations: the history this function
saw, or the deployment's prior before it saw any), so that a task is seen soon after it ends
without asking the upstream needlessly: the next poll comes where the task has about a quarter
chance of having ended since the last one, densely where tasks usually end, sparsely elsewhere.
The upstream's eta is a hint: it may shorten a wait, and lengthen one only as far as the
history's median. An eta proved wrong is ignored for the rest of the job, one that history finds
implausible earns one look at the end it names, never fast polling, and the etas of an upstream
whose etas have lately been wrong more often than right are ignored: each look they earned would
cost a turn (a Lambda call and a write) for a task that still runs.

The state machine's Wait states count whole seconds and cost a Lambda call and a write per turn,
while a running Lambda bills by the millisecond: gaps under a second are slept inside the call,
longer ones are handed to a Wait.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from zimage.jobs.durations import ETA_GRANULARITY_SECONDS, Durations


class PollPolicy(NamedTuple):
    min_wait_seconds: int = 1
    max_wait_seconds: int = 30
    # One call polls in-process for at most twice this, so no plan can hold the Lambda long.
    fast_poll_window_seconds: float = 3.0
    # The shortest gap between two polls.
    fast_poll_interval_seconds: float = 0.25


# The chance of the task having ended that each poll is planned to cover.
MASS_PER_POLL = 0.25
# An eta that names an end earlier than this share of the tasks that ran as long ever ended
# is implausible: it earns one look at that end, not fast polling.
PLAUSIBLE_SHARE = 0.05
# An eta whose end passed this long ago while the task still runs was wrong.
ETA_GRACE_SECONDS = 0.5
# Past every task seen so far, the next poll comes after this share of the time run so far.
BACKOFF_SHARE = 0.5
# Past the median of all tasks, no gap is longer than this: the late ones are the slow jobs a
# client notices, and a Wait of a second costs little next to their own time.
TAIL_GAP_SECONDS = 1.0
# Past where this share of all tasks ended, a task is a slow one, and every gap is a Wait of
# TAIL_GAP_SECONDS: a turn that finds it running costs less than a second of the Lambda held
# (docs/design.md), and a slow job's client barely notices the lag.
BULK_SHARE = 0.8
# A gap of at least this long is handed to a Wait state; a shorter one is slept in the Lambda.
SHORTEST_WAIT_SECONDS = 1.0


def expected_remaining_seconds(eta: float | None, progress: float | None, elapsed: float) -> float | None:
    """The upstream's word on how long the task still needs; None when it says nothing (for many
    models eta and progress stay 0)."""
    if eta is not None and eta > 0:
        return float(eta)
    if progress is not None and 0 < progress < 100 and elapsed > 0:
        return elapsed * (100 - progress) / progress
    return None


def eta_proved_wrong(elapsed: float, eta_end: float | None) -> bool:
    """The task still runs well past the end its eta named."""
    return eta_end is not None and elapsed > eta_end + ETA_GRACE_SECONDS


def eta_verdict(eta_end: float, running_at: float, ended_by: float) -> bool | None:
    """Whether a task's eta told its end, from the last answer that found it running and the first
    that found it ended (seconds since the submit), between which it ended: True when that span
    lies inside the second the eta named (etas are whole seconds, rounded either way), False when
    wholly outside it, None when it straddles an edge. Only answers close enough to have found the
    eta right are judged: a long Wait can prove an eta wrong but never right, and judging it would
    count a mostly-right upstream's misses and few of its hits."""
    opens = eta_end - ETA_GRANULARITY_SECONDS - ETA_GRACE_SECONDS
    closes = eta_end + ETA_GRACE_SECONDS
    if ended_by - running_at > closes - opens:
        return None
    if ended_by < opens or running_at > closes:
        return False
    if opens <= running_at and ended_by <= closes:
        return True
    return None


def next_poll_in(
    elapsed: float, durations: Durations, eta_end: float | None, *, eta_trusted: bool, policy: PollPolicy
) -> float:
    """Seconds from an answer, given `elapsed` seconds since the submit, to the next poll.
    `eta_end` is when the upstream said the task would end (seconds since the submit), or None."""
    planned = durations.quantile_after(elapsed, MASS_PER_POLL)
    if planned is None:  # longer than every task seen: back off in proportion to its age
        gap = median_gap = max(float(policy.min_wait_seconds), elapsed * BACKOFF_SHARE)
    else:
        gap = planned - elapsed
        median_gap = (durations.quantile_after(elapsed, 0.5) or planned) - elapsed
        typical_end = durations.expected_end(0.0)
        bulk_end = durations.quantile_after(0.0, BULK_SHARE)
        if bulk_end is not None and elapsed >= bulk_end:
            gap = TAIL_GAP_SECONDS  # a slow task: polled by Waits, not by a Lambda held
        elif typical_end is not None and elapsed >= typical_end:
            gap = min(gap, TAIL_GAP_SECONDS)  # past the usual end, the late tasks are seen within a Wait
    if eta_end is not None and eta_trusted:
        window_opens = eta_end - ETA_GRANULARITY_SECONDS - elapsed
        earliest = durations.quantile_after(elapsed, PLAUSIBLE_SHARE)
        if earliest is None or eta_end >= earliest:
            # Inside the eta's last second poll fast; before it, wait for it, but never past
            # the median of what history says (past every task seen, history says nothing).
            longest = median_gap if planned is not None else window_opens
            gap = policy.fast_poll_interval_seconds if window_opens <= 0 else min(window_opens, max(gap, longest))
        elif eta_end > elapsed:
            gap = min(gap, eta_end - elapsed)  # one look at the end it named, never a longer wait
    return min(max(gap, policy.fast_poll_interval_seconds), float(policy.max_wait_seconds))


def believed_end(elapsed: float, durations: Durations, eta_end: float | None) -> float | None:
    """Where the service believes a task still running at `elapsed` ends (seconds since the
    submit), which the job shows its clients as its eta: the upstream's eta where history finds
    it plausible, brought inside history's range where not, and history's median without one."""
    median = durations.expected_end(elapsed)
    if eta_end is None or median is None:
        return median if eta_end is None else eta_end
    earliest = durations.quantile_after(elapsed, PLAUSIBLE_SHARE) or eta_end
    latest = durations.quantile_after(elapsed, 1 - PLAUSIBLE_SHARE) or eta_end
    return min(max(eta_end, earliest), latest)


def sleeps_in_lambda(gap: float) -> bool:
    """Whether a gap is slept inside the call rather than handed to a Wait state."""
    return gap < SHORTEST_WAIT_SECONDS


def wait_seconds(gap: float, time_left: float, policy: PollPolicy, *, no_end_before: float | None = None) -> int:
    """Seconds for the Wait state (a whole number, as ASL requires) nearest the planned gap,
    inside MinWaitSeconds and MaxWaitSeconds, never past the deadline. `no_end_before` is how
    long from now until the earliest end among the tasks lately seen closely
    (Durations.earliest_end_seen): a Wait that rounding down would end before it is rounded up
    instead, since its poll would find the task running where none of those ended, and leave most
    of a second to sleep in the Lambda. At least half of the tasks that end within the first Wait
    are learned spread over all of it (Durations.add_ended), which pulls its plan early; rounded to
    the nearest second, the first Wait would flip between two lengths as the plan crosses the
    half second, and each job's cost with it. Rounding up never goes past the plan's next whole
    second."""
    wait = math.floor(gap + 0.5)
    if no_end_before is not None and wait < no_end_before:
        wait = math.ceil(gap)
    wait = min(max(wait, policy.min_wait_seconds), policy.max_wait_seconds)
    return max(1, min(wait, math.ceil(max(time_left, 0))))
