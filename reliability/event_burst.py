"""A burst of requested events: many `Image Generation Requested` events put on the bus at once,
some invalid, some put twice with the same idempotency_key, while the upstream rate-limits part of
the submits. Every request must end with exactly one outcome event carrying its metadata, and the
upstream must see exactly one task per valid request. The suite runs a hundred; `make
reliability` a thousand."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from local.stack import LocalStack

REQUESTED = "Image Generation Requested"
OUTCOMES = (
    "Image Generation Succeeded",
    "Image Generation Failed",
    "Image Generation Canceled",
    "Image Generation Rejected",
)
PUT_EVENTS_ENTRIES = 10  # PutEvents takes at most ten entries a call
TIMED_OUT = "upstream_timeout"


@dataclass
class RequestBurst:
    source: str
    events: list[dict]  # PutEvents entries, repeats included
    expected: dict[str, dict] = field(default_factory=dict)  # request -> {"metadata", "valid"}

    @property
    def valid_prompts(self) -> list[str]:
        return [f"burst {request}" for request, facts in self.expected.items() if facts["valid"]]

    def outcomes_by_request(self, seen: list[dict]) -> dict[str, list[dict]]:
        """The outcome events of this burst, by the request each carries in its metadata."""
        found: dict[str, list[dict]] = defaultdict(list)
        for event in seen:
            metadata = event["detail"].get("metadata") or {}
            if event["detail-type"] in OUTCOMES and metadata.get("burst") == self.source:
                found[metadata["n"]].append(event)
        return dict(found)

    def answered(self, seen: list[dict]) -> bool:
        return set(self.outcomes_by_request(seen)) >= set(self.expected)


def request_burst(*, valid: int, invalid: int, repeated: int, run: str) -> RequestBurst:
    """`valid` requests (every other one with an idempotency_key), `invalid` ones (a size no
    model draws), and the first `repeated` keyed requests put a second time, as a producer
    retrying its put would: two events, one request."""
    source = f"reliability.burst-{run}"
    burst = RequestBurst(source=source, events=[])
    keyed: list[dict] = []
    for n in range(valid + invalid):
        is_valid = n < valid
        metadata = {"burst": source, "n": str(n)}
        detail: dict[str, Any] = {
            "prompt": f"burst {n}",
            "size": "256*256" if is_valid else "9*9",
            "seed": n,
            "metadata": metadata,
        }
        if n % 2 == 0:
            detail["idempotency_key"] = f"{run}-{n}"
        entry = {"Source": source, "DetailType": REQUESTED, "Detail": json.dumps(detail)}
        burst.events.append(entry)
        burst.expected[str(n)] = {"metadata": metadata, "valid": is_valid}
        if is_valid and "idempotency_key" in detail:
            keyed.append(entry)
    burst.events += keyed[:repeated]
    return burst


def put_requests(stack: LocalStack, entries: list[dict], *, producers: int = 8) -> None:
    """Put the entries on the stack's bus at once, from several producers."""
    events = stack.client("events")
    batches = [
        [{**entry, "EventBusName": stack.event_bus} for entry in entries[i : i + PUT_EVENTS_ENTRIES]]
        for i in range(0, len(entries), PUT_EVENTS_ENTRIES)
    ]

    def put(batch: list[dict]) -> None:
        answer = events.put_events(Entries=batch)
        if answer.get("FailedEntryCount"):
            raise AssertionError(f"PutEvents refused entries: {answer['Entries']}")

    with ThreadPoolExecutor(producers) as pool:
        list(pool.map(put, batches))


class OutcomeTap:
    """A rule and queue of a pipeline's own on the stack's bus: every zimage event lands here."""

    def __init__(self, stack: LocalStack, *, name: str):
        self.sqs = stack.client("sqs")
        self.url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = stack.client("events")
        events.put_rule(Name=name, EventBusName=stack.event_bus, EventPattern=json.dumps({"source": ["zimage"]}))
        events.put_targets(Rule=name, EventBusName=stack.event_bus, Targets=[{"Id": "tap", "Arn": arn}])
        self.seen: list[dict] = []

    def drain(self) -> list[dict]:
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
                "Messages", []
            )
            if not messages:
                return self.seen
            for message in messages:
                self.seen.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])

    def until(self, done: Callable[[list[dict]], bool], *, timeout: float, settle: float = 2.0) -> list[dict]:
        """Collect until `done` holds, then a little longer so that a second outcome of any
        request would be seen too; fails on the deadline instead of waiting forever."""
        deadline = time.monotonic() + timeout
        while not done(self.drain()):
            if time.monotonic() > deadline:
                raise AssertionError(f"not every request answered after {timeout}s")
            time.sleep(0.25)
        time.sleep(settle)
        return self.drain()


def run_event_burst(stack: LocalStack, *, valid: int = 1000, invalid: int = 20, repeated: int = 50) -> dict:
    """The burst with a third of the submits rate-limited; the counts the report shows."""
    import uuid

    emulator = stack.emulator
    emulator.reset()
    emulator.configure(rate_limit_every=3)
    tasks_before = len(emulator.tasks)
    tap = OutcomeTap(stack, name=f"reliability-burst-{uuid.uuid4().hex[:8]}")
    burst = request_burst(valid=valid, invalid=invalid, repeated=repeated, run=uuid.uuid4().hex[:8])
    started = time.monotonic()
    put_requests(stack, burst.events)
    try:
        seen = tap.until(burst.answered, timeout=60 + valid * 0.5)
    except AssertionError:
        seen = tap.drain()
    seconds = time.monotonic() - started
    by_request = burst.outcomes_by_request(seen)
    outcomes = [events[0] for events in by_request.values()]
    tasks = list(emulator.tasks.values())[tasks_before:]
    prompts = [task.prompt for task in tasks]
    result = {
        "events_put": len(burst.events),
        "requests": len(burst.expected),
        "valid_requests": valid,
        "repeated_puts": repeated,
        "submits_rate_limited": emulator.rate_limited,
        "requests_answered": len(by_request),
        "requests_with_more_than_one_outcome": sum(1 for events in by_request.values() if len(events) > 1),
        "metadata_carried": sum(
            1
            for request, events in by_request.items()
            if events[0]["detail"]["metadata"] == burst.expected[request]["metadata"]
        ),
        "succeeded": sum(1 for e in outcomes if e["detail-type"] == "Image Generation Succeeded"),
        "rejected": sum(1 for e in outcomes if e["detail-type"] == "Image Generation Rejected"),
        "rejected_valid_requests_by_code": dict(
            Counter(
                events[0]["detail"]["error"]["code"]
                for request, events in by_request.items()
                if burst.expected[request]["valid"] and events[0]["detail-type"] == "Image Generation Rejected"
            )
        ),
        "other_outcomes": sum(
            1 for e in outcomes if e["detail-type"] not in ("Image Generation Succeeded", "Image Generation Rejected")
        ),
        "upstream_tasks": len(tasks),
        "upstream_tasks_for_one_request_twice": len(prompts) - len(set(prompts)),
        "seconds": round(seconds, 1),
    }
    emulator.reset()
    return result


def burst_problems(result: dict) -> list[str]:
    """What the burst must show; empty when it held."""
    problems = []
    if result["requests_answered"] != result["requests"]:
        problems.append(f"{result['requests'] - result['requests_answered']} requests without an outcome")
    if result["requests_with_more_than_one_outcome"]:
        problems.append(f"{result['requests_with_more_than_one_outcome']} requests with more than one outcome")
    if result["metadata_carried"] != result["requests_answered"]:
        problems.append("metadata lost on some outcome")
    if result["upstream_tasks"] != result["valid_requests"] or result["upstream_tasks_for_one_request_twice"]:
        problems.append(f"{result['upstream_tasks']} upstream tasks for {result['valid_requests']} valid requests")
    # A submit the upstream did not answer in time may have made a task, so it is rejected
    # (upstream_timeout), never retried; any other end of a valid request is a problem.
    unexplained = {code: n for code, n in result["rejected_valid_requests_by_code"].items() if code != TIMED_OUT}
    if unexplained or result["other_outcomes"]:
        problems.append(f"valid requests ended otherwise: {unexplained or result['other_outcomes']}")
    return problems
