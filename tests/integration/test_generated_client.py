"""openapi.json makes a working client: openapi-python-client generates one from it (offline,
into the test's tmp_path), and a job runs end to end through it against the local stack, every
answer parsed into the client's models."""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import urllib3

from local.openapi import DOCUMENT
from local.stack import DEV_API_KEY

PACKAGE = "zimage_generated_client"
DEADLINE_SECONDS = 30


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """The client generated from the committed document, imported as PACKAGE."""
    root = tmp_path_factory.mktemp("generated_client")
    # No post hooks: they would run ruff over the generated code, which only makes it prettier.
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")
    command = [sys.executable, "-m", "openapi_python_client", "generate", "--path", str(DOCUMENT)]
    command += ["--output-path", str(root / PACKAGE), "--meta", "none", "--config", str(config)]
    # --fail-on-warning: a part of the document the generator skips (an operation, a schema) fails.
    command += ["--fail-on-warning"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - our own interpreter and document
    assert result.returncode == 0, result.stdout + result.stderr

    sys.path.insert(0, str(root))
    try:

        def module(name: str) -> ModuleType:
            return importlib.import_module(f"{PACKAGE}.{name}")

        yield SimpleNamespace(
            client=module("client"),
            models=module("models"),
            types=module("types"),
            create_image=module("api.images.create_image"),
            get_image=module("api.images.get_image"),
            list_images=module("api.images.list_images"),
            cancel_image=module("api.images.cancel_image"),
            get_open_api_document=module("api.meta.get_open_api_document"),
        )
    finally:
        sys.path.remove(str(root))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]


def test_the_document_names_every_operation_for_the_generator():
    document = json.loads(Path(DOCUMENT).read_text())
    operations = {
        (method.upper(), path): (operation["operationId"], operation["tags"])
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }

    assert operations == {
        ("POST", "/v1/images"): ("createImage", ["images"]),
        ("GET", "/v1/images"): ("listImages", ["images"]),
        ("GET", "/v1/images/{job_id}"): ("getImage", ["images"]),
        ("DELETE", "/v1/images/{job_id}"): ("cancelImage", ["images"]),
        ("GET", "/v1/health"): ("checkHealth", ["health"]),
        ("GET", "/v1/openapi.json"): ("getOpenApiDocument", ["meta"]),
    }
    assert all(tag.get("description") for tag in document["tags"])
    assert {tag["name"] for tag in document["tags"]} == {"images", "health", "meta"}


def test_a_job_runs_end_to_end_through_the_generated_client(generated, stack, emulator):
    models = generated.models
    client = generated.client.AuthenticatedClient(
        base_url=stack.api_url, token=DEV_API_KEY, auth_header_name="x-api-key", prefix="", timeout=30.0
    )

    # GIVEN a job started with createImage
    started = generated.create_image.sync_detailed(
        client=client, body=models.CreateImageRequest(prompt="a red fox in snow", size="512*512", seed=7)
    )
    assert started.status_code == 202, started.content
    job = started.parsed
    assert isinstance(job, models.JobView)
    assert isinstance(job.status, models.JobStatus)
    assert started.headers["Location"] == f"/v1/images/{job.id}"

    # WHEN getImage follows it until it ends
    deadline = time.monotonic() + DEADLINE_SECONDS
    while job.status not in (models.JobStatus.SUCCEEDED, models.JobStatus.FAILED, models.JobStatus.CANCELED):
        assert time.monotonic() < deadline, f"job {job.id} still {job.status} after {DEADLINE_SECONDS}s"
        time.sleep(0.2)
        read = generated.get_image.sync_detailed(job.id, client=client)
        assert read.status_code == 200, read.content
        job = read.parsed
        assert isinstance(job, models.JobView)

    # THEN it succeeded, its times and image parsed into the client's types, and the image downloads
    assert job.status is models.JobStatus.SUCCEEDED, job.to_dict()
    assert job.completed_at is not None and job.completed_at >= job.created_at
    assert job.created_at.utcoffset().total_seconds() == 0  # the API answers UTC
    image = job.image
    assert isinstance(image, models.ImageView)
    assert (image.width, image.height) == (512, 512)
    assert isinstance(image.content_type, models.ImageViewContentType)
    assert image.expires_at is not None and image.expires_at > job.completed_at
    download = urllib3.request("GET", image.url, timeout=10, retries=False)
    assert download.status == 200
    assert len(download.data) == image.bytes_  # the generator adds the _: `bytes` is a builtin
    assert hashlib.sha256(download.data).hexdigest() == image.sha256

    # AND listImages finds it, the status filter going through the JobStatus enum
    found, cursor, pages = None, generated.types.UNSET, 0
    while found is None and pages < 20:
        page = generated.list_images.sync(client=client, status=models.JobStatus.SUCCEEDED, limit=100, cursor=cursor)
        assert isinstance(page, models.JobPage), page
        found = next((item for item in page.items if item.id == job.id), None)
        pages += 1
        if not isinstance(page.next_cursor, str):
            break
        cursor = page.next_cursor
    assert found is not None, f"job {job.id} not in the list"
    assert found.status is models.JobStatus.SUCCEEDED

    # AND cancelImage on the ended job answers 200 with the job as it was
    canceled = generated.cancel_image.sync_detailed(job.id, client=client)
    assert canceled.status_code == 200, canceled.content
    assert isinstance(canceled.parsed, models.JobView)
    assert without_presigned_url(canceled.parsed.to_dict()) == without_presigned_url(job.to_dict())


def test_the_document_reads_through_the_generated_client_without_a_key(generated, stack):
    client = generated.client.Client(base_url=stack.api_url, timeout=10.0)

    answer = generated.get_open_api_document.sync_detailed(client=client)

    assert answer.status_code == 200, answer.content
    document = answer.parsed.to_dict()
    assert document["paths"]["/v1/images/{job_id}"]["get"]["operationId"] == "getImage"


def test_an_unknown_job_is_parsed_into_the_error_model(generated, stack, emulator):
    client = generated.client.Client(base_url=stack.api_url, headers={"x-api-key": DEV_API_KEY}, timeout=10.0)

    answer = generated.get_image.sync_detailed("img_00000000000000000000000000", client=client)

    assert answer.status_code == 404
    assert isinstance(answer.parsed, generated.models.ErrorBody)
    assert answer.parsed.error.code == "not_found"


def without_presigned_url(job: dict) -> dict:
    """A job as two reads show it: each read presigns the image's URLs anew."""
    image = {
        key: value for key, value in job.get("image", {}).items() if key not in ("url", "expires_at", "download_url")
    }
    return {**job, "image": image}
