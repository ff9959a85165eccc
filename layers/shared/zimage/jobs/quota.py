"""Hard daily caps on jobs: per API key and for the whole deployment, per UTC day.

API Gateway's usage-plan quotas and throttles are best effort (AWS says they are not hard limits),
so a leaked key could still run up the upstream bill. Each submit therefore takes one unit from
two counters before the upstream is called, each with a single conditional UpdateItem: the key's
counter first, then the deployment's. Whichever is full refuses with 429 `quota_exceeded`, and a
key whose deployment refused gets its unit back.

The counters live in the jobs table under ids no job can have (`quota#key#<owner>#<date>`,
`quota#all#<date>`). They carry only `job_id`, `used` and `expires_at`: no `owner` or
`created_at` (so the by_owner index never lists them) and no `active_shard` (so the sweeper never
reads them); GET and DELETE look up only ids matching JOB_ID. TTL removes them two days after
their day ends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple

from aws_lambda_powertools import Logger
from botocore.exceptions import ClientError

from zimage import errors
from zimage.clock import utc_now
from zimage.upstream.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable

logger = Logger(child=True)

PREFIX = "quota#"
# A counter outlives its day by this much, then TTL removes it (TTL deletes within a few days of
# expires_at; a counter of a past day is never read again, so when does not matter).
KEEP_AFTER_DAY = timedelta(days=2)

TAKE = "SET expires_at = :expires ADD used :one"
UNDER_CAP = "attribute_not_exists(used) OR used < :cap"
GIVE_BACK = "ADD used :minus_one"
ONLY_IF_TAKEN = "attribute_exists(used) AND used > :zero"


class DailyCaps(NamedTuple):
    """Jobs per UTC day; 0 turns that cap off (nothing is counted for it)."""

    per_key: int
    per_deployment: int


class Taken(NamedTuple):
    """The counters one submit took a unit from, so the same ones (same day) get it back."""

    counter_ids: tuple[str, ...]


EVENT_OWNER_PREFIX = "events:"
EVENTS = "events"


def event_owner(source: str) -> str:
    """Jobs made from events belong to their source, so no API key ever sees them."""
    return EVENT_OWNER_PREFIX + source


def counted_owner(owner: str) -> str:
    """Whose daily cap a job counts against: an API key's own, or one for every event source
    together, so a producer cannot widen its cap by naming new sources."""
    return EVENTS if owner.startswith(EVENT_OWNER_PREFIX) else owner


def key_counter_id(owner: str, day: str) -> str:
    return f"{PREFIX}key#{owner}#{day}"


def deployment_counter_id(day: str) -> str:
    return f"{PREFIX}all#{day}"


def next_midnight(now: datetime) -> datetime:
    """The next UTC midnight after `now`: when today's counters stop counting."""
    today = now.astimezone(UTC).date()
    return datetime.combine(today + timedelta(days=1), time(0), tzinfo=UTC)


def seconds_until_midnight(now: datetime) -> int:
    """Whole seconds to wait (rounded up, at least 1) until the caps renew."""
    return max(1, math.ceil((next_midnight(now) - now).total_seconds()))


def upstream_refused(exc: UpstreamError) -> bool:
    """True when the upstream surely made no task: it answered with a refusal (4xx, 429, 5xx) or
    no connection was ever opened. A read timeout or a lost connection (UpstreamTimeout), or a 200
    without a usable task id, may have made one: the unit stays spent."""
    if isinstance(exc, UpstreamTimeout):
        return False
    return not (isinstance(exc, UpstreamUnavailable) and exc.status == 200)


class DailyQuota:
    def __init__(self, table: Any, caps: DailyCaps, *, clock: Callable[[], datetime] = utc_now):
        """`table` is a boto3 DynamoDB Table resource (the jobs table)."""
        self._table = table
        self.caps = caps
        self._clock = clock

    def take(self, owner: str) -> Taken:
        """One job for `owner`, or QuotaExceeded naming the cap that is full."""
        now = self._clock()
        day = now.astimezone(UTC).date().isoformat()
        expires = int((next_midnight(now) + KEEP_AFTER_DAY).timestamp())
        taken: list[str] = []
        for counter_id, cap, whose in (
            (
                key_counter_id(owner, day),
                self.caps.per_key,
                "the event sources' daily cap" if owner == EVENTS else "this API key's daily cap",
            ),
            (deployment_counter_id(day), self.caps.per_deployment, "the deployment's daily cap"),
        ):
            if cap <= 0:
                continue
            try:
                under_cap = self._take_one(counter_id, cap, expires)
            except Exception:
                # Fail closed: a job that cannot be counted is not started.
                logger.exception("daily quota could not be counted", extra={"counter": counter_id})
                self.give_back(Taken(tuple(taken)))
                raise errors.WorkflowUnavailable(
                    "the service could not count the job against its daily caps; nothing was created, please retry"
                ) from None
            if not under_cap:
                self.give_back(Taken(tuple(taken)))
                renews = next_midnight(now)
                raise errors.QuotaExceeded(
                    f"{whose} of {cap} jobs per UTC day is reached; it renews at "
                    f"{renews.strftime('%Y-%m-%dT%H:%M:%SZ')} (next UTC midnight)",
                    headers={"Retry-After": str(seconds_until_midnight(now))},
                )
            taken.append(counter_id)
        return Taken(tuple(taken))

    def give_back(self, taken: Taken) -> None:
        """Return the units of a submit that made no upstream task. Best effort: a failure is
        logged, and the caller still gets the answer of what actually went wrong."""
        for counter_id in taken.counter_ids:
            try:
                self._table.update_item(
                    Key={"job_id": counter_id},
                    UpdateExpression=GIVE_BACK,
                    ConditionExpression=ONLY_IF_TAKEN,
                    ExpressionAttributeValues={":minus_one": -1, ":zero": 0},
                )
            except Exception:
                logger.exception("daily quota unit could not be given back", extra={"counter": counter_id})

    def _take_one(self, counter_id: str, cap: int, expires: int) -> bool:
        try:
            self._table.update_item(
                Key={"job_id": counter_id},
                UpdateExpression=TAKE,
                ConditionExpression=UNDER_CAP,
                ExpressionAttributeValues={":one": 1, ":cap": cap, ":expires": expires},
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True
