"""Our own copy of each image in S3, and the presigned URLs clients download it with."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from zimage.clock import iso, utc_now
from zimage.jobs.model import StoredImage

if TYPE_CHECKING:  # the functions that only sign URLs never load the image checks
    from zimage.images.checks import ImageFacts


# A saved file's extension, by the content type S3 keeps with the object.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def image_key(job_id: str) -> str:
    """Where a job's image is stored: derived from the job id alone, so a retried store
    overwrites instead of adding a copy, and a running job's view can already name the object
    clients watch for (`links.image`). The format is the object's content type, not its name."""
    return f"images/{job_id}"


def file_name(job_id: str, content_type: str) -> str:
    """The name a downloaded image is saved under."""
    return f"{job_id}.{EXTENSIONS.get(content_type, 'img')}"


class ImageStore:
    def __init__(self, s3_client: Any, bucket: str, *, retention_days: int):
        self._s3 = s3_client
        self._bucket = bucket
        self._retention = timedelta(days=retention_days)

    def put(self, job_id: str, data: bytes, facts: ImageFacts) -> StoredImage:
        key = image_key(job_id)
        # Read before the write: the object's own creation time, from which the bucket counts
        # its retention, is later, so the image outlives this moment plus the retention.
        kept_until = iso(utc_now() + self._retention)
        self._s3.put_object(
            Bucket=self._bucket,
            Key=key,
            Body=data,
            ContentType=facts.content_type,
            # S3 recomputes the checksum and refuses the write if the bytes changed on the way.
            ChecksumSHA256=base64.b64encode(bytes.fromhex(facts.sha256)).decode(),
            Metadata={"job-id": job_id, "sha256": facts.sha256},
        )
        return StoredImage(
            bucket=self._bucket,
            key=key,
            content_type=facts.content_type,
            width=facts.width,
            height=facts.height,
            bytes=facts.bytes,
            sha256=facts.sha256,
            kept_until=kept_until,
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def presign(self, key: str, lifetime_seconds: int, *, download_as: str | None = None) -> tuple[str, str]:
        """A GET URL for the object and the moment it stops working. With `download_as`, S3
        answers it with `Content-Disposition: attachment`, so a browser saves the file under that
        name instead of showing it (a link's `download` attribute is ignored across origins)."""
        params = {"Bucket": self._bucket, "Key": key}
        if download_as:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
        url = self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=lifetime_seconds)
        return url, iso(utc_now() + timedelta(seconds=lifetime_seconds))
