"""Image URLs live as long as the PresignedUrlSeconds parameter says (default 900 s): the
template's value reaches the functions' environment, the settings, the signed URL
(X-Amz-Expires) and the job view's expires_at. No URL outlives the image's retention."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from local.template import Resolver, load_template
from zimage.clock import epoch_seconds, iso, utc_now
from zimage.jobs.model import StoredImage
from zimage.jobs.view import job_view
from zimage.runtime import Runtime

from ..conftest import BUCKET, a_job

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


def test_no_deployment_promises_a_url_past_an_hour():
    """The functions sign with their role's temporary credentials, and a URL dies with that
    session whatever its X-Amz-Expires says: past an hour, expires_at would be a promise the
    service has no way to keep."""
    assert TEMPLATE["Parameters"]["PresignedUrlSeconds"]["MaxValue"] <= 3600


@pytest.mark.parametrize(("parameters", "seconds"), [({}, 900), ({"PresignedUrlSeconds": 120}, 120)])
def test_the_url_and_expires_at_follow_the_parameter(parameters, seconds, aws, monkeypatch):
    # GIVEN a function's environment from the template, and a succeeded job's stored image
    for name, value in function_environment(parameters).items():
        monkeypatch.setenv(name, value)
    runtime = Runtime()  # the settings and the S3 client as the functions make them
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=7 * 86400))

    # WHEN a client reads the job
    before = utc_now().timestamp()
    view = job_view(job, runtime.images, runtime.settings.presigned_url_seconds)
    after = utc_now().timestamp()

    # THEN the URL is signed for that long, and expires_at says until when
    query = parse_qs(urlsplit(view["image"]["url"]).query)
    assert query["X-Amz-Expires"] == [str(seconds)]
    expires_at = epoch_seconds(view["image"]["expires_at"])
    assert before + seconds - 0.001 <= expires_at <= after + seconds


def stored_image(*, kept_for_seconds: float) -> StoredImage:
    kept_until = iso(utc_now() + timedelta(seconds=kept_for_seconds))
    return StoredImage(BUCKET, "images/fox.jpg", "image/jpeg", 320, 256, 1234, "ab" * 32, kept_until=kept_until)


def test_the_image_retention_reaches_the_functions():
    assert function_environment({})["IMAGE_RETENTION_DAYS"] == "7"
    assert function_environment({"ImageRetentionDays": 3})["IMAGE_RETENTION_DAYS"] == "3"


def test_a_url_never_outlives_the_image(images):
    # GIVEN an image the bucket may delete in 100 s, and URLs meant to live 900 s
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=100))

    view = job_view(job, images, 900)

    # THEN the URL is signed for what is left of the image's retention, and says so
    query = parse_qs(urlsplit(view["image"]["url"]).query)
    assert 98 <= int(query["X-Amz-Expires"][0]) <= 100
    assert epoch_seconds(view["image"]["expires_at"]) <= epoch_seconds(view["image"]["kept_until"])


def test_an_image_past_its_retention_has_no_url_but_keeps_its_facts(images):
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=-1))

    image = job_view(job, images, 900)["image"]

    assert "url" not in image
    assert "expires_at" not in image
    assert image["kept_until"] == job.image.kept_until
    assert (image["width"], image["height"], image["sha256"]) == (320, 256, "ab" * 32)


def test_the_completion_event_says_until_when_the_image_is_kept():
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=86400))

    detail = job.to_event_detail()

    assert detail["image"]["kept_until"] == job.image.kept_until
    assert "url" not in detail["image"]


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("us-east-1", f"{BUCKET}.s3.amazonaws.com"),  # the global host is us-east-1's own
        ("eu-west-1", f"{BUCKET}.s3.eu-west-1.amazonaws.com"),
        ("ap-southeast-3", f"{BUCKET}.s3.ap-southeast-3.amazonaws.com"),  # opened after March 2019
        ("cn-north-1", f"{BUCKET}.s3.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_a_url_names_the_buckets_regional_host(region, host, monkeypatch):
    """The global host answers 307 for up to a day after a bucket outside us-east-1 is made,
    and never in regions opened after March 2019; AWS cannot be reached here, so this pins the
    host botocore resolves for the functions' S3 client (no request is sent to sign a URL)."""
    # GIVEN the functions' runtime in `region`, with no local endpoint
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("IMAGES_BUCKET", BUCKET)
    runtime = Runtime()
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=86400))

    # WHEN a client reads a succeeded job
    url = urlsplit(job_view(job, runtime.images, 900)["image"]["url"])

    # THEN its URL is signed for the bucket's own regional host, virtual-hosted, over https
    assert (url.scheme, url.hostname, url.path) == ("https", host, "/images/fox.jpg")
    assert parse_qs(url.query)["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert parse_qs(url.query)["X-Amz-Credential"][0].split("/")[2] == region


def test_the_download_url_saves_the_file_under_the_jobs_name(images):
    # GIVEN a succeeded job's stored image
    job = a_job(status="succeeded", image=stored_image(kept_for_seconds=7 * 86400))

    view = job_view(job, images, 900)

    # THEN its download URL asks S3 for an attachment named after the job and its type, as long as the URL
    download = parse_qs(urlsplit(view["image"]["download_url"]).query)
    assert download["response-content-disposition"] == [f'attachment; filename="{job.job_id}.jpg"']
    assert download["X-Amz-Expires"] == parse_qs(urlsplit(view["image"]["url"]).query)["X-Amz-Expires"]
    assert "response-content-disposition" not in parse_qs(urlsplit(view["image"]["url"]).query)


@pytest.mark.parametrize("status", ["queued", "processing"])
def test_a_running_job_names_where_its_image_will_be(images, status):
    # GIVEN a job that has not ended
    job = a_job(status=status)

    view = job_view(job, images, 900)

    # THEN its view names the object the workflow will store, signed as long as an image's URL:
    # the key is the job's alone, whatever format the upstream sends
    url = urlsplit(view["links"]["image"])
    assert url.path.endswith(f"/images/{job.job_id}")
    assert parse_qs(url.query)["X-Amz-Expires"] == ["900"]
    assert view["links"]["self"] == f"/v1/images/{job.job_id}"


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_an_ended_job_names_no_image_to_watch(images, status):
    image = stored_image(kept_for_seconds=86400) if status == "succeeded" else None
    view = job_view(a_job(status=status, image=image), images, 900)
    assert view["links"] == {"self": f"/v1/images/{view['id']}"}
