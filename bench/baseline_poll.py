"""The baseline's "Get Job Status" Lambda: one look at the task per turn and, when it is done,
the same storing as the service's poll step, in the same call. No eta, no in-Lambda polling: the fixed Wait does
the rest, as in the AWS Step Functions Job Poller sample."""

from __future__ import annotations

from zimage.runtime import shared_runtime
from zimage.workflow.poll import PollDependencies, poll


def lambda_handler(event: dict, context: object) -> dict:
    deps = PollDependencies.from_runtime(shared_runtime())
    return poll(event, deps._replace(policy=deps.policy._replace(fast_poll_window_seconds=0)))
