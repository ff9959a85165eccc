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
while a running Lambda bills by the millisecond: short gaps are slept inside the call, and from
most of a second on (SHORTEST_WAIT_SECONDS) they are handed to a Wait.
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
# Past every task seen so far, the next poll comes after this share of how far past the longest
# the task is, the shortest Wait at the least: one a little longer than any seen is still seen
# soon, and one stuck for long is asked about ever more rarely.
BACKOFF_SHARE = 0.5
# Past the median of all tasks, no gap is longer than this: the late ones are the slow jobs a
# client notices, and a Wait of a second costs little next to their own time.
TAIL_GAP_SECONDS = 1.0
# A gap of at least this long is handed to a Wait state (whole seconds, MinWaitSeconds at the
# least); a shorter one is slept in the Lambda. From here on a turn (a Lambda call and a read of
# the job) costs less than the poll function held through the gap, and with the shortest Wait of
# a second the poll comes less than a third of a second past its plan (docs/performance.md, the
# budget).
SHORTEST_WAIT_SECONDS = 0.7


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
    if planned is None:  # longer than every task seen: back off as it grows longer still
        past_longest = elapsed - durations.longest()
        gap = median_gap = max(float(policy.min_wait_seconds), past_longest * BACKOFF_SHARE)
    else:
        gap = planned - elapsed
        median_gap = (durations.quantile_after(elapsed, 0.5) or planned) - elapsed
        typical_end = durations.expected_end(0.0)
        if typical_end is not None and elapsed >= typical_end:
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


def wait_seconds(gap: float, time_left: float, policy: PollPolicy) -> int:
    """Seconds for the Wait state (a whole number, as ASL requires) nearest the planned gap,
    inside MinWaitSeconds and MaxWaitSeconds, never past the deadline. A plan that rounds down
    may end its Wait before tasks end; its poll then finds the task running, and the
    next gap, of a second at most, goes to another Wait once it is SHORTEST_WAIT_SECONDS or more:
    a turn, not the Lambda held. Rounding up instead would leave a task ending within that second
    unseen for up to a second."""
    wait = math.floor(gap + 0.5)
    wait = min(max(wait, policy.min_wait_seconds), policy.max_wait_seconds)
    return max(1, min(wait, math.ceil(max(time_left, 0))))
