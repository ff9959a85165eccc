"""Image URLs live as long as the PresignedUrlSeconds parameter says (default 900 s): the
template's value reaches the functions' environment, the settings, the signed URL
(X-Amz-Expires) and the job view's expires_at."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from local.template import Resolver, load_template
from zimage.models import StoredImage, epoch_seconds, utc_now
from zimage.runtime import Runtime
from zimage.views import job_view

from .conftest import BUCKET, a_job

TEMPLATE = load_template()


def function_environment(parameters: dict) -> dict[str, str]:
    """What every function's environment holds once the template is deployed with `parameters`."""
    variables = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    resolver = Resolver(TEMPLATE, parameters)
    resolver.refs.update(JobsTable="unit-jobs", ImagesBucket=BUCKET, ImageEventBus="unit-bus")
    return {name: str(value) for name, value in resolver.resolve(variables).items()}


def test_the_default_lifetime_is_fifteen_minutes():
    assert TEMPLATE["Parameters"]["PresignedUrlSeconds"]["Default"] == 900
    assert function_environment({})["PRESIGNED_URL_SECONDS"] == "900"


@pytest.mark.parametrize(("parameters", "seconds"), [({}, 900), ({"PresignedUrlSeconds": 120}, 120)])
def test_the_url_and_expires_at_follow_the_parameter(parameters, seconds, aws, monkeypatch):
    # GIVEN a function's environment from the template, and a succeeded job's stored image
    for name, value in function_environment(parameters).items():
        monkeypatch.setenv(name, value)
    runtime = Runtime()  # the settings and the S3 client as the functions make them
    image = StoredImage(BUCKET, "images/fox.jpg", "image/jpeg", 320, 256, 1234, "ab" * 32)
    job = a_job(status="succeeded", image=image)

    # WHEN a client reads the job
    before = utc_now().timestamp()
    view = job_view(job, runtime.images, runtime.settings.presigned_url_seconds)
    after = utc_now().timestamp()

    # THEN the URL is signed for that long, and expires_at says until when
    query = parse_qs(urlsplit(view["image"]["url"]).query)
    assert query["X-Amz-Expires"] == [str(seconds)]
    expires_at = epoch_seconds(view["image"]["expires_at"])
    assert before + seconds - 0.001 <= expires_at <= after + seconds
