"""What `make run` keeps across restarts (local/persistence.py), against moto in-process."""

from __future__ import annotations

import boto3

from local.persistence import LocalState, end_interrupted_jobs

from ..conftest import a_job

BUCKET = "kept-images"


def fresh_aws(jobs_table_spec: dict) -> tuple:
    """Empty resources as a restarted stack makes them: the jobs table, a binary table, the bucket."""
    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    for table in dynamodb.list_tables()["TableNames"]:
        dynamodb.delete_table(TableName=table)
    if any(bucket["Name"] == BUCKET for bucket in s3.list_buckets()["Buckets"]):
        for entry in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=entry["Key"])
        s3.delete_bucket(Bucket=BUCKET)
    dynamodb.create_table(TableName="jobs", **jobs_table_spec)
    dynamodb.create_table(
        TableName="blobs",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    s3.create_bucket(Bucket=BUCKET)
    return dynamodb, s3


def jobs_table_spec() -> dict:
    from local.template import Resolver, load_template

    template = load_template()
    table = Resolver(template, {}).resolve(template["Resources"]["JobsTable"]["Properties"])
    return {
        name: table[name]
        for name in ("BillingMode", "AttributeDefinitions", "KeySchema", "GlobalSecondaryIndexes")
        if name in table
    }


def test_a_clean_stop_and_a_start_bring_back_every_item_and_object(aws, tmp_path):
    state = LocalState(tmp_path / "state")
    spec = jobs_table_spec()
    done = a_job(status="succeeded", completed_at="2026-01-01T00:00:00Z")
    item = {"id": {"S": "b"}, "blob": {"B": b"\x00\xff"}, "nested": {"M": {"set": {"BS": [b"\x01"]}}}}
    # GIVEN a stack's data: a job, a binary item, an image with its metadata
    dynamodb, s3 = fresh_aws(spec)
    boto3.resource("dynamodb").Table("jobs").put_item(Item=done.to_item())
    dynamodb.put_item(TableName="blobs", Item=item)
    s3.put_object(Bucket=BUCKET, Key="images/x.jpg", Body=b"jpeg", ContentType="image/jpeg", Metadata={"a": "1"})

    assert state.save(dynamodb, s3, BUCKET) == (2, 1)

    # WHEN a new, empty stack restores it
    dynamodb, s3 = fresh_aws(spec)
    assert dynamodb.scan(TableName="blobs")["Items"] == []
    assert state.restore(dynamodb, s3, BUCKET) == (2, 1)

    # THEN all of it is back as it was
    assert dynamodb.get_item(TableName="blobs", Key={"id": {"S": "b"}})["Item"] == item
    kept = boto3.resource("dynamodb").Table("jobs").get_item(Key={"job_id": done.job_id})["Item"]
    assert kept["status"] == "succeeded"
    got = s3.get_object(Bucket=BUCKET, Key="images/x.jpg")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (b"jpeg", "image/jpeg", {"a": "1"})


def test_nothing_saved_restores_nothing(aws, tmp_path):
    dynamodb, s3 = fresh_aws(jobs_table_spec())
    assert LocalState(tmp_path / "none").restore(dynamodb, s3, BUCKET) == (0, 0)


def test_jobs_left_running_end_failed_as_interrupted_and_ended_ones_stay(aws):
    fresh_aws(jobs_table_spec())
    table = boto3.resource("dynamodb").Table("jobs")
    running, queued = a_job(status="processing", progress=40), a_job()
    done = a_job(status="succeeded", completed_at="2026-01-01T00:00:00Z")
    for job in (running, queued, done):
        table.put_item(Item=job.to_item())

    ended = end_interrupted_jobs(table)

    assert sorted(ended) == sorted([running.job_id, queued.job_id])
    for job in (running, queued):
        kept = table.get_item(Key={"job_id": job.job_id})["Item"]
        assert (kept["status"], kept["error"]["code"]) == ("failed", "interrupted")
    assert table.get_item(Key={"job_id": done.job_id})["Item"]["status"] == "succeeded"


def test_a_key_keeps_its_id_and_the_secret_stays_the_same_across_starts(tmp_path):
    first = LocalState(tmp_path / "state")
    ids = first.api_keys(["one", "two"])
    secret = first.webhook_secret()

    again = LocalState(tmp_path / "state")

    # a key keeps its id whatever the order or the company; a new key gets a new id
    assert again.api_keys(["two", "three"]) == {"two": ids["two"], "three": "local-key-3"}
    assert again.api_keys(["one"]) == {"one": ids["one"]}
    assert again.webhook_secret() == secret
    assert len(secret) >= 32

    again.clear()
    assert LocalState(tmp_path / "state").webhook_secret() != secret
