"""The job as clients see it, with a presigned image URL made at the moment of reading."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zimage.models import SUCCEEDED, Job

if TYPE_CHECKING:
    from zimage.storage import ImageStore


def job_view(job: Job, images: ImageStore, url_lifetime_seconds: int) -> dict:
    if job.image is None or job.status != SUCCEEDED:
        return job.to_view()
    url, expires_at = images.presign(job.image.key, url_lifetime_seconds)
    return job.to_view(image_url=url, url_expires_at=expires_at)
