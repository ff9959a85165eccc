"""How long a job may poll, derived from how long its workflow execution may live.

The deployment sets two numbers, ExecutionTimeoutSeconds (the execution's hard timeout) and
PollTurnSeconds (the poll function's timeout, so the longest one turn may take); everything else
follows from them, so no two settings can contradict each other:

    submit ---- job deadline ---- + last turn ---- + event ---- execution's hard timeout
           poll_deadline_seconds   PollTurnSeconds   EVENT_RESERVE_SECONDS

A turn that starts before the job's deadline has a whole turn before the execution must send its
completion event; no turn ever starts work (an upstream call, a download) it cannot finish before
then. A job whose execution died anyway stays in the sweeper's index until its event is out.
"""

from __future__ import annotations

from typing import NamedTuple

from zimage.errors import InconsistentSettings

# Kept after the last turn for the completion event (AnnounceSucceeded or AnnounceFailed, then
# MarkAnnounced). Should the execution die inside it, the sweeper sends the event instead.
EVENT_RESERVE_SECONDS = 10
# Kept at the end of every turn for what follows its last upstream call: the S3 write of the image
# and the job's record.
STORE_RESERVE_SECONDS = 5
# An upstream call given less than this would only time out; an image download likewise.
SHORTEST_CALL_SECONDS = 1.0
SHORTEST_DOWNLOAD_SECONDS = 3.0
# A turn shorter than this could never store an image: its one call would leave no time to download.
SHORTEST_TURN_SECONDS = STORE_RESERVE_SECONDS + SHORTEST_CALL_SECONDS + SHORTEST_DOWNLOAD_SECONDS
DEADLINE_MESSAGE = "the image was not ready before the job's deadline"
# https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html
EXPRESS_LIMIT_SECONDS = 300
# The sweeper leaves an overdue job alone until its execution surely ended: the execution starts
# a moment after the submit reads the clock, and the clocks of two Lambdas may differ a little.
SWEEP_GRACE_SECONDS = 30


class WorkflowTiming(NamedTuple):
    execution_timeout_seconds: int
    poll_turn_seconds: int

    @property
    def poll_deadline_seconds(self) -> int:
        """From submit to the job's deadline, when it fails with `timeout`."""
        return self.execution_timeout_seconds - self.poll_turn_seconds - EVENT_RESERVE_SECONDS


def stale_after_deadline_seconds(poll_turn_seconds: int) -> int:
    """How long past its deadline a job's execution may still be running: its last turn, its
    event, and a grace. The sweeper (and a read) leave an unfinished job alone until then."""
    return poll_turn_seconds + EVENT_RESERVE_SECONDS + SWEEP_GRACE_SECONDS


def workflow_timing(
    *,
    execution_timeout_seconds: int,
    poll_turn_seconds: int,
    workflow_type: str = "STANDARD",
    min_wait_seconds: int = 1,
    max_wait_seconds: int = 30,
) -> WorkflowTiming:
    """The deployment's timing, or InconsistentSettings naming every contradiction CloudFormation
    could not refuse (its Rules cannot compare numbers)."""
    timing = WorkflowTiming(execution_timeout_seconds, poll_turn_seconds)
    problems = []
    if workflow_type == "EXPRESS" and execution_timeout_seconds > EXPRESS_LIMIT_SECONDS:
        problems.append(
            f"ExecutionTimeoutSeconds is {execution_timeout_seconds}, but an EXPRESS execution lasts "
            f"{EXPRESS_LIMIT_SECONDS} s at most; choose STANDARD or a shorter timeout"
        )
    if timing.poll_deadline_seconds < 1:
        problems.append(
            f"ExecutionTimeoutSeconds ({execution_timeout_seconds}) leaves no time to poll: it must exceed "
            f"PollTurnSeconds ({poll_turn_seconds}) plus {EVENT_RESERVE_SECONDS} s for the completion event"
        )
    if poll_turn_seconds < SHORTEST_TURN_SECONDS:
        problems.append(
            f"PollTurnSeconds ({poll_turn_seconds}) leaves no time to store an image: a turn keeps "
            f"{STORE_RESERVE_SECONDS} s for storing after its calls, so it needs {SHORTEST_TURN_SECONDS:g} s at least"
        )
    if min_wait_seconds > max_wait_seconds:
        problems.append(f"MinWaitSeconds ({min_wait_seconds}) is above MaxWaitSeconds ({max_wait_seconds})")
    if problems:
        raise InconsistentSettings("the deployment's settings contradict each other: " + "; ".join(problems))
    return timing


def calls_end(
    *, turn_started: float, poll_turn_seconds: int, execution_deadline: float, function_ends_at: float | None = None
) -> float:
    """The moment (epoch seconds) by which a turn's upstream calls must be over: within the turn,
    before the time kept for the completion event, inside the function's own timeout, with the
    end of the turn kept for storing."""
    ends = [turn_started + poll_turn_seconds, execution_deadline - EVENT_RESERVE_SECONDS]
    if function_ends_at is not None:
        ends.append(function_ends_at)
    return min(ends) - STORE_RESERVE_SECONDS
