"""Unit fixtures: moto in-process, with the jobs table built from template.yaml so the test schema
cannot drift from the deployed one. Unit tests open no sockets: pytest-socket refuses any."""

from __future__ import annotations

import io
import json
import time
from datetime import datetime

import boto3
import pytest
from moto import mock_aws
from PIL import Image
from pytest_socket import disable_socket, enable_socket

from local.template import Resolver, load_template
from zimage.clock import iso, utc_now
from zimage.images.store import ImageStore
from zimage.jobs.model import Job, new_job_id
from zimage.jobs.store import JobStore
from zimage.runtime import S3_CLIENT_CONFIG

BUCKET = "unit-images"


def a_job(*, at: datetime | None = None, **changes) -> Job:
    """A queued job made `at` (default now), with any field changed."""
    made = iso(at or utc_now())
    job = Job(
        job_id=new_job_id(),
        owner="key-1",
        status="queued",
        prompt="a fox",
        size="320*256",
        seed=-1,
        task_id="t-1",
        created_at=made,
        updated_at=made,
        deadline_at=made,
        expires_at=int(time.time()) + 3600,
    )
    return job.with_changes(**changes)


class FakeClock:
    """Time that moves only when slept through: a step's sleeps and the workflow's Waits."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def no_network():
    """Any socket a unit test opens fails it at once (Unix sockets stay, for subprocesses' pipes)."""
    disable_socket(allow_unix_socket=True)
    yield
    enable_socket()


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def jobs(aws) -> JobStore:
    template = load_template()
    table = Resolver(template, {}).resolve(template["Resources"]["JobsTable"]["Properties"])
    dynamodb = boto3.resource("dynamodb")
    created = dynamodb.create_table(
        TableName="unit-jobs",
        BillingMode=table["BillingMode"],
        AttributeDefinitions=table["AttributeDefinitions"],
        KeySchema=table["KeySchema"],
        GlobalSecondaryIndexes=table["GlobalSecondaryIndexes"],
    )
    return JobStore(created)


@pytest.fixture
def images(aws) -> ImageStore:
    s3 = boto3.client("s3", config=S3_CLIENT_CONFIG)  # as the functions sign
    s3.create_bucket(Bucket=BUCKET)
    return ImageStore(s3, BUCKET, retention_days=7)


def picture(width: int, height: int, image_format: str = "JPEG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, image_format)
    return out.getvalue()


class ManagedPolicies:
    def load(self) -> dict:
        return {
            name: f"arn:aws:iam::aws:policy/{name}" for name in ("AWSXrayWriteOnlyAccess", "AWSXRayDaemonWriteAccess")
        } | {"AWSLambdaBasicExecutionRole": "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"}


def expand(monkeypatch, **parameters: object) -> dict:
    """What `sam deploy` does first: expand the SAM resources, with these parameter values."""
    from samtranslator.translator.transform import transform

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    template = json.loads(json.dumps(load_template(), default=str))
    for resource in template["Resources"].values():  # what `sam package` puts in place of local paths
        properties = resource.get("Properties", {})
        for name in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(name), str):
                properties[name] = f"s3://artifacts/{name}.zip"
        if isinstance(properties.get("DefinitionUri"), str):
            properties["DefinitionUri"] = {"Bucket": "artifacts", "Key": "image_job.asl.json"}
    return transform(template, parameters, ManagedPolicies())["Resources"]
