"""The jobs table. Every status change is a conditional write, so a job that has ended (or was
canceled) is never moved again, whichever Lambda or retry comes late."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from zimage.clock import epoch_seconds, iso, utc_now
from zimage.jobs.durations import ETA_GRANULARITY_SECONDS
from zimage.jobs.model import (
    ACTIVE_STATUSES,
    CANCELED,
    FAILED,
    PROCESSING,
    SUCCEEDED,
    SWEEP_SHARDS,
    Job,
    JobError,
    StoredImage,
    present_fields,
)

OWNER_INDEX = "by_owner"
ACTIVE_INDEX = "active_by_deadline"
# A filtered listing reads at most this many index pages per request; past that it answers
# with what it found and a cursor, so a rare status never turns one call into a long scan.
MAX_PAGES_PER_LIST = 10

_NAMES = {"#status": "status"}
_STILL_ACTIVE = "#status IN (:queued, :processing)"
_ACTIVE_VALUES = {":queued": ACTIVE_STATUSES[0], ":processing": ACTIVE_STATUSES[1]}


class JobStore:
    def __init__(self, table: Any):
        """`table` is a boto3 DynamoDB Table resource."""
        self._table = table

    def create(self, job: Job) -> None:
        self._table.put_item(Item=job.to_item(), ConditionExpression="attribute_not_exists(job_id)")

    def get(self, job_id: str) -> Job | None:
        item = self._table.get_item(Key={"job_id": job_id}, ConsistentRead=True).get("Item")
        return Job.from_item(item) if item else None

    def delete(self, job_id: str) -> None:
        self._table.delete_item(Key={"job_id": job_id})

    def record_progress(
        self,
        job_id: str,
        *,
        processing: bool,
        progress: int | None,
        eta_seconds: int | None,
        said_at: datetime | None = None,
    ) -> Job | None:
        """Note what the upstream said about a running task (at `said_at`, by default now).
        Returns the job as it now is, or None if it does not exist."""
        now = utc_now()
        sets = ["updated_at = :now"]
        values: dict[str, Any] = {":now": iso(now)}
        if processing:
            sets.append("#status = :new_status")
            values[":new_status"] = PROCESSING
        said = iso(said_at or now) if eta_seconds is not None else None
        for name, value in (("progress", progress), ("eta_seconds", eta_seconds), ("eta_at", said)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        return self._update_active(job_id, "SET " + ", ".join(sets), values)

    def record_success(self, job_id: str, *, image: StoredImage, seed: int | None) -> Job | None:
        now = iso(utc_now())
        sets = "SET #status = :done, image = :image, completed_at = :now, updated_at = :now"
        values: dict[str, Any] = {":done": SUCCEEDED, ":image": present_fields(image), ":now": now}
        if seed is not None:
            sets += ", seed = :seed"
            values[":seed"] = seed
        return self._update_active(job_id, sets + " REMOVE progress, eta_seconds, eta_at", values)

    def record_failure(self, job_id: str, *, code: str, message: str) -> Job | None:
        """The workflow's failure path, which sends the failed event itself."""
        return self.end_as_failed(job_id, code=code, message=message)[0]

    # Every ended job stays in the active index until its completion event is sent
    # (mark_announced: the workflow's MarkAnnounced state, or zimage.events.announce after a
    # cancel or a settle). Should the send fail, or the execution or Lambda die first, the sweeper
    # finds the job there past its deadline and sends the event then: at least once, never lost.

    def end_as_failed(self, job_id: str, *, code: str, message: str) -> tuple[Job | None, bool]:
        """Fail an active job; the flag says whether this call did it (and so announces it)."""
        now = iso(utc_now())
        return self._update_if_active(
            job_id,
            "SET #status = :failed, #error = :error, completed_at = :now, updated_at = :now "
            "REMOVE progress, eta_seconds, eta_at",
            {":failed": FAILED, ":error": JobError(code=code, message=message)._asdict(), ":now": now},
            extra_names={"#error": "error"},
        )

    def cancel(self, job_id: str) -> tuple[Job | None, bool]:
        """Cancel an active job; the flag says whether this call did it (and so announces it)."""
        now = iso(utc_now())
        return self._update_if_active(
            job_id,
            "SET #status = :canceled, completed_at = :now, updated_at = :now REMOVE progress, eta_seconds, eta_at",
            {":canceled": CANCELED, ":now": now},
        )

    def mark_announced(self, job_id: str) -> None:
        """The ended job's completion event is out: it leaves the active index. The workflow's
        MarkAnnounced state makes this same update itself."""
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="REMOVE active_shard",
            ConditionExpression="attribute_exists(job_id)",
        )

    def record_webhook(self, job_id: str, **fields: Any) -> None:
        """Note a delivery attempt (state, attempts, last_status, ...) on the job's webhook."""
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET " + ", ".join(f"webhook.#w_{name} = :w_{name}" for name in fields),
            ConditionExpression="attribute_exists(webhook)",
            ExpressionAttributeNames={f"#w_{name}": name for name in fields},
            ExpressionAttributeValues={f":w_{name}": value for name, value in fields.items()},
        )

    def overdue(self, cutoff: str, *, limit: int = 500) -> list[str]:
        """Ids of jobs in the sparse active index whose deadline passed before `cutoff` (ISO time):
        jobs still active, and ended jobs whose completion event is not out yet. Announced jobs
        are not in it, so this never reads history."""
        found: list[str] = []
        for shard in range(SWEEP_SHARDS):
            query: dict[str, Any] = {
                "IndexName": ACTIVE_INDEX,
                "KeyConditionExpression": "active_shard = :shard AND deadline_at < :cutoff",
                "ExpressionAttributeValues": {":shard": str(shard), ":cutoff": cutoff},
            }
            while len(found) < limit:
                page = self._table.query(**query)
                found += [item["job_id"] for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def list_for_owner(
        self, owner: str, *, status: str | None = None, limit: int = 20, start_key: dict | None = None
    ) -> tuple[list[Job], dict | None]:
        """The owner's jobs, newest first, from the owner index (never a table scan). Returns the
        page and the key to continue from, or None on the last page."""
        query: dict[str, Any] = {
            "IndexName": OWNER_INDEX,
            "KeyConditionExpression": "#owner = :owner",
            "ExpressionAttributeNames": {"#owner": "owner"},
            "ExpressionAttributeValues": {":owner": owner},
            "ScanIndexForward": False,
        }
        if status:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"]["#status"] = "status"
            query["ExpressionAttributeValues"][":status"] = status
        # One more than asked for tells whether another page exists, so the last page never
        # carries a cursor.
        wanted = limit + 1
        jobs: list[Job] = []
        next_key = start_key
        for _ in range(MAX_PAGES_PER_LIST):
            page = self._table.query(
                **query, Limit=wanted - len(jobs), **({"ExclusiveStartKey": next_key} if next_key else {})
            )
            jobs.extend(Job.from_item(item) for item in page.get("Items", []))
            next_key = page.get("LastEvaluatedKey")
            if next_key is None or len(jobs) >= wanted:
                break
        if len(jobs) > limit:
            last = jobs[limit - 1]
            return jobs[:limit], {"job_id": last.job_id, "owner": last.owner, "created_at": last.created_at}
        return jobs, next_key  # None when the index is exhausted; else the page budget ran out

    def _update_active(
        self, job_id: str, expression: str, values: dict, *, extra_names: dict | None = None
    ) -> Job | None:
        return self._update_if_active(job_id, expression, values, extra_names=extra_names)[0]

    def _update_if_active(
        self, job_id: str, expression: str, values: dict, *, extra_names: dict | None = None
    ) -> tuple[Job | None, bool]:
        """Apply an update only while the job is still queued or processing. When it has ended
        already, nothing changes and the job is returned as it is, so callers can see why."""
        try:
            answer = self._table.update_item(
                Key={"job_id": job_id},
                UpdateExpression=expression,
                ConditionExpression=f"attribute_exists(job_id) AND {_STILL_ACTIVE}",
                ExpressionAttributeNames={**_NAMES, **(extra_names or {})},
                ExpressionAttributeValues={**values, **_ACTIVE_VALUES},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            return self.get(job_id), False
        return Job.from_item(answer["Attributes"]), True


# Before a held job's expected end, it is read this often: an early end is answered within it.
BLIND_READ_SECONDS = 1.0


def wait_for_end(
    read: Callable[[], Job | None],
    seconds: float,
    *,
    interval: float = 0.25,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], float] = time.time,
) -> Job | None:
    """Hold a read of a job until it ends or `seconds` pass (for `Prefer: wait`); returns the last
    read. Before the job's expected end (its eta, as the workflow last wrote it, less the eta's
    whole-second rounding) it reads once every `BLIND_READ_SECONDS`, and past it every `interval`:
    a held function bills by the millisecond whether it reads or not, so the reads are what it can
    save, yet an eta is an estimate (often history's median), and a job that ends sooner is
    answered within that second."""
    deadline = clock() + seconds
    job = read()
    while job is not None and not job.is_terminal:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        pause = interval
        if job.eta_seconds and job.eta_at:
            expected_in = epoch_seconds(job.eta_at) + job.eta_seconds - ETA_GRANULARITY_SECONDS - now()
            pause = max(interval, min(expected_in, BLIND_READ_SECONDS))
        sleep(min(pause, remaining))
        job = read()
    return job
