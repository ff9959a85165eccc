"""The job the service keeps and shows: statuses, ids, and its records."""

from __future__ import annotations

import os
import re
import time
import zlib
from decimal import Decimal
from typing import Any, NamedTuple

from zimage.clock import epoch_seconds

QUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELED = "queued", "processing", "succeeded", "failed", "canceled"


STATUSES = (QUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELED)


ACTIVE_STATUSES = (QUEUED, PROCESSING)


TERMINAL_STATUSES = (SUCCEEDED, FAILED, CANCELED)


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


SWEEP_SHARDS = 10  # spreads active jobs over index partitions, so starts never queue on one


def active_shard_for(job_id: str) -> str:
    return str(zlib.crc32(job_id.encode()) % SWEEP_SHARDS)


def new_job_id() -> str:
    """`img_` + a ULID: sortable by creation time, 80 random bits. uuid7 reaches the standard
    library only in Python 3.14, and the format is ten lines."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "img_" + "".join(reversed(chars))


JOB_ID = re.compile(r"^img_[0-9A-HJKMNP-TV-Z]{26}$")


# The layer's records are NamedTuples: immutable like frozen dataclasses, but made at import
# with one small eval each instead of several compiled methods, which every cold start of the
# poll step would pay for (the figures are in docs/performance.md, "Cold starts").
class StoredImage(NamedTuple):
    bucket: str
    key: str
    content_type: str
    width: int
    height: int
    bytes: int
    sha256: str
    # ImageRetentionDays from the moment of writing: the bucket's lifecycle may delete the
    # object any time after it (S3 counts days from the object's creation, rounded up to
    # midnight UTC), so no URL is handed out past it.
    kept_until: str | None = None


class WebhookState(NamedTuple):
    """Where the final job goes, and how delivery went: pending -> delivered | failed."""

    url: str
    state: str = "pending"
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: str | None = None
    delivered_at: str | None = None


class JobError(NamedTuple):
    code: str
    message: str


class Job(NamedTuple):
    job_id: str
    owner: str
    status: str
    prompt: str
    size: str
    seed: int
    created_at: str
    updated_at: str
    deadline_at: str
    expires_at: int  # epoch seconds; DynamoDB's TTL removes the record after it
    task_id: str | None = None
    execution_arn: str | None = None
    completed_at: str | None = None
    progress: int | None = None
    eta_seconds: int | None = None
    eta_at: str | None = None  # when the upstream said eta_seconds
    image: StoredImage | None = None
    error: JobError | None = None
    webhook: WebhookState | None = None
    # Set while the job is active, removed when it ends: the sparse index the sweeper reads.
    active_shard: str | None = None
    metadata: dict[str, str] | None = None  # the caller's, returned unchanged
    # A job made from an event: the request it answers (source, event_id, idempotency_key).
    request: dict[str, str] | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def with_changes(self, **changes: Any) -> Job:
        return self._replace(**changes)

    def to_item(self) -> dict:
        item = present_fields(self)
        for name in ("image", "error", "webhook"):
            if name in item:
                item[name] = present_fields(item[name])
        return item

    @classmethod
    def from_item(cls, item: dict) -> Job:
        plain = _plain(item)
        image = plain.pop("image", None)
        error = plain.pop("error", None)
        webhook = plain.pop("webhook", None)
        known = {name for name in cls._fields if name not in ("image", "error", "webhook")}
        return cls(
            **{k: v for k, v in plain.items() if k in known},
            image=StoredImage(**image) if image else None,
            error=JobError(**error) if error else None,
            webhook=WebhookState(**webhook) if webhook else None,
        )

    def to_view(
        self, *, image_url: str | None = None, url_expires_at: str | None = None, download_url: str | None = None
    ) -> dict:
        """The job as the API shows it (contract: the job object)."""
        view: dict[str, Any] = {
            "id": self.job_id,
            "status": self.status,
            "prompt": self.prompt,
            "size": self.size,
            "seed": self.seed,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }
        if self.completed_at:
            view["completed_at"] = self.completed_at
        if self.progress is not None and not self.is_terminal:
            view["progress"] = self.progress
        if self.eta_seconds is not None and not self.is_terminal:
            view["eta_seconds"] = _counted_down(self.eta_seconds, since=self.eta_at or self.updated_at)
        if self.status == SUCCEEDED and self.image:
            view["image"] = {"url": image_url, "expires_at": url_expires_at} if image_url else {}
            if image_url and download_url:
                view["image"]["download_url"] = download_url
            view["image"].update(
                content_type=self.image.content_type,
                width=self.image.width,
                height=self.image.height,
                bytes=self.image.bytes,
                sha256=self.image.sha256,
            )
            if self.image.kept_until:
                view["image"]["kept_until"] = self.image.kept_until
        if self.status == FAILED and self.error:
            view["error"] = {"code": self.error.code, "message": self.error.message}
        if self.webhook:
            view["webhook"] = present_fields(self.webhook)
        if self.metadata is not None:
            view["metadata"] = dict(self.metadata)
        if self.request:
            view["request"] = dict(self.request)
        view["links"] = {"self": f"/v1/images/{self.job_id}"}
        return view

    def to_event_detail(self) -> dict:
        """The completion event's detail: the job without a presigned URL (it would expire in
        the consumer's hands), plus where the image is stored."""
        detail = self.to_view()
        if self.webhook:
            detail["webhook"] = {"url": self.webhook.url}  # delivery state changes after the event
        if self.status == SUCCEEDED and self.image:
            detail["bucket"], detail["key"] = self.image.bucket, self.image.key
        return detail


def present_fields(record: NamedTuple) -> dict:
    """A record's fields that have a value: DynamoDB items and views leave the others out."""
    return {name: value for name, value in record._asdict().items() if value is not None}


def _counted_down(eta_seconds: int, *, since: str) -> int:
    """The upstream's eta was true when the upstream said it; a reader between two polls sees it
    count down instead of standing still."""
    elapsed = time.time() - epoch_seconds(since)
    return max(0, round(eta_seconds - max(0.0, elapsed)))


def _plain(value: Any) -> Any:
    """DynamoDB hands numbers back as Decimal; the job holds only whole numbers."""
    if isinstance(value, Decimal):
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
