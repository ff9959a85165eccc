"""The job as clients see it, with presigned URLs made at the moment of reading."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from zimage.clock import epoch_seconds
from zimage.images.store import file_name, image_key
from zimage.jobs.model import SUCCEEDED, Job

if TYPE_CHECKING:
    from zimage.images.store import ImageStore


def job_view(job: Job, images: ImageStore, url_lifetime_seconds: int) -> dict:
    """A running job's view names where its image will be (`links.image`: watching it costs an S3
    request where a read of the job costs an API call). A succeeded job's view carries a URL until
    its image's retention ends, never one that outlives it; after that the job keeps its image's
    facts, without a URL."""
    if not job.is_terminal:
        view = job.to_view()
        view["links"]["image"], _ = images.presign(image_key(job.job_id), url_lifetime_seconds)
        return view
    if job.image is None or job.status != SUCCEEDED:
        return job.to_view()
    lifetime = url_lifetime_seconds
    if job.image.kept_until:
        lifetime = min(lifetime, int(epoch_seconds(job.image.kept_until) - time.time()))
        if lifetime < 1:
            return job.to_view()
    url, expires_at = images.presign(job.image.key, lifetime)
    download_url, _ = images.presign(job.image.key, lifetime, download_as=file_name(job.job_id, job.image.content_type))
    return job.to_view(image_url=url, url_expires_at=expires_at, download_url=download_url)
