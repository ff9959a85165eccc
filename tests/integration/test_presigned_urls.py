"""Over HTTP: a succeeded job's image URL is signed for PresignedUrlSeconds (the template's
default, 900 s, on this stack) and expires_at says until when."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import urllib3

from local.template import load_template
from zimage.clock import epoch_seconds


def test_the_image_url_lives_as_long_as_the_parameters_default(stack, api):
    default = load_template()["Parameters"]["PresignedUrlSeconds"]["Default"]
    assert default == 900 and "PresignedUrlSeconds" not in stack.parameters
    job = api.wait(api.submit(size="512*512")["id"])
    assert job["status"] == "succeeded", job

    before = time.time()
    image = api.get(job["id"])["image"]
    after = time.time()

    assert parse_qs(urlsplit(image["url"]).query)["X-Amz-Expires"] == [str(default)]
    assert before + default - 0.001 <= epoch_seconds(image["expires_at"]) <= after + default
    assert urllib3.request("GET", image["url"], timeout=10).status == 200


def test_the_download_url_answers_the_image_as_an_attachment(api):
    job = api.wait(api.submit(size="512*512")["id"])
    assert job["status"] == "succeeded", job

    download = urllib3.request("GET", job["image"]["download_url"], timeout=10)
    shown = urllib3.request("GET", job["image"]["url"], timeout=10)

    assert download.status == 200
    assert download.headers["Content-Disposition"] == f'attachment; filename="{job["id"]}.jpg"'
    assert download.data == shown.data
    assert "Content-Disposition" not in shown.headers


def test_a_running_jobs_image_link_answers_once_the_image_is_stored(api):
    # GIVEN a job just submitted: its answer names where the image will be
    submitted = api.submit(size="512*512")
    watched = submitted["links"]["image"]

    # THEN until the image is stored the link answers "not there" (S3 on AWS: 403 to a signer that
    # may not list the bucket, 404 here), and once the job succeeded a ranged GET finds it
    assert urllib3.request("GET", watched, headers={"Range": "bytes=0-0"}, timeout=10).status in (403, 404)
    job = api.wait(submitted["id"])
    assert job["status"] == "succeeded", job
    look = urllib3.request("GET", watched, headers={"Range": "bytes=0-0"}, timeout=10)
    assert look.status == 206 and len(look.data) == 1
    assert urllib3.request("GET", watched, timeout=10).data == urllib3.request("GET", job["image"]["url"]).data
    assert "image" not in job["links"]  # an ended job has nothing to watch
