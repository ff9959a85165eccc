"""The jobs table. Every status change is a conditional write, so a job that has ended (or was
canceled) is never moved again, whichever Lambda or retry comes late."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from zimage.models import ACTIVE_STATUSES, FAILED, PROCESSING, SUCCEEDED, Job, JobError, StoredImage, iso, utc_now

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
        self, job_id: str, *, processing: bool, progress: int | None, eta_seconds: int | None
    ) -> Job | None:
        """Note what the upstream said about a running task. Returns the job as it now is, or
        None if it does not exist."""
        sets = ["updated_at = :now"]
        values: dict[str, Any] = {":now": iso(utc_now())}
        if processing:
            sets.append("#status = :new_status")
            values[":new_status"] = PROCESSING
        for name, value in (("progress", progress), ("eta_seconds", eta_seconds)):
            if value is not None:
                sets.append(f"{name} = :{name}")
                values[f":{name}"] = value
        return self._update_active(job_id, "SET " + ", ".join(sets), values)

    def record_success(self, job_id: str, *, image: StoredImage, seed: int | None) -> Job | None:
        now = iso(utc_now())
        sets = "SET #status = :done, image = :image, completed_at = :now, updated_at = :now"
        values: dict[str, Any] = {":done": SUCCEEDED, ":image": asdict(image), ":now": now}
        if seed is not None:
            sets += ", seed = :seed"
            values[":seed"] = seed
        return self._update_active(job_id, sets + " REMOVE progress, eta_seconds", values)

    def record_failure(self, job_id: str, *, code: str, message: str) -> Job | None:
        now = iso(utc_now())
        return self._update_active(
            job_id,
            "SET #status = :failed, #error = :error, completed_at = :now, updated_at = :now "
            "REMOVE progress, eta_seconds",
            {":failed": FAILED, ":error": asdict(JobError(code=code, message=message)), ":now": now},
            extra_names={"#error": "error"},
        )

    def attach_execution(self, job_id: str, execution_arn: str) -> None:
        self._table.update_item(
            Key={"job_id": job_id},
            UpdateExpression="SET execution_arn = :arn",
            ExpressionAttributeValues={":arn": execution_arn},
        )

    def _update_active(
        self, job_id: str, expression: str, values: dict, *, extra_names: dict | None = None
    ) -> Job | None:
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
            return self.get(job_id)
        return Job.from_item(answer["Attributes"])
