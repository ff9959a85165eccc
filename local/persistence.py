"""What `make run` keeps across restarts, in a folder (out/local-state by default).

moto keeps everything in memory, so the local stack writes its data out through the AWS APIs
on a clean stop (every table's items, every object of the images bucket) and puts it back
through them at the next start, before the API takes a request. Its identity is kept as soon
as it is made: the id of each API key (jobs belong to the key id, so a key sees its jobs again)
and the webhook signing secret (receivers keep verifying).

An execution does not survive the restart, so a job still queued or processing when the stack
stopped ends failed with the code `interrupted` when it comes back. `FRESH=1 make run` (or
`python -m local run --fresh`) empties the folder and starts clean.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
from pathlib import Path
from typing import Any

INTERRUPTED = "interrupted"
INTERRUPTED_MESSAGE = "the local stack stopped while this job ran, and its workflow did not survive; submit it again"


class LocalState:
    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @property
    def _identity_file(self) -> Path:
        return self.folder / "identity.json"

    @property
    def _data(self) -> Path:
        return self.folder / "data"

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- identity ----------------------------------------------------------------------------

    def _identity(self) -> dict:
        if self._identity_file.exists():
            return json.loads(self._identity_file.read_text())
        return {"api_keys": {}, "webhook_secret": None}

    def _save_identity(self, identity: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._identity_file.write_text(json.dumps(identity, indent=2))
        self._identity_file.chmod(0o600)  # the signing secret

    def api_keys(self, keys: list[str]) -> dict[str, str]:
        """key -> key id for these keys: the id a key had before, a new one for a new key."""
        identity = self._identity()
        known: dict[str, str] = identity["api_keys"]
        for key in keys:
            if key not in known:
                known[key] = f"local-key-{len(known) + 1}"
        self._save_identity(identity)
        return {key: known[key] for key in keys}

    def webhook_secret(self) -> str:
        """The signing secret of the first start, the same at every start after it."""
        identity = self._identity()
        if not identity.get("webhook_secret"):
            identity["webhook_secret"] = secrets.token_urlsafe(36).replace("-", "a").replace("_", "b")
            self._save_identity(identity)
        return identity["webhook_secret"]

    # --- data --------------------------------------------------------------------------------

    def save(self, dynamodb: Any, s3: Any, bucket: str) -> tuple[int, int]:
        """Write every table's items and the bucket's objects; (items, objects) written. The
        previous copy is replaced only once the new one is complete."""
        saving = self.folder / "data.saving"
        shutil.rmtree(saving, ignore_errors=True)
        (saving / "objects").mkdir(parents=True)
        items = 0
        tables: dict[str, list] = {}
        for table in dynamodb.list_tables()["TableNames"]:
            rows = []
            for page in dynamodb.get_paginator("scan").paginate(TableName=table):
                rows.extend(_portable(item) for item in page["Items"])
            tables[table] = rows
            items += len(rows)
        (saving / "tables.json").write_text(json.dumps(tables))
        objects: dict[str, dict] = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                got = s3.get_object(Bucket=bucket, Key=entry["Key"])
                name = f"{len(objects)}.bin"  # keys may hold any character; the file names do not
                (saving / "objects" / name).write_bytes(got["Body"].read())
                objects[entry["Key"]] = {"file": name, "ContentType": got["ContentType"], "Metadata": got["Metadata"]}
        (saving / "objects.json").write_text(json.dumps(objects))
        shutil.rmtree(self._data, ignore_errors=True)
        saving.rename(self._data)
        return items, len(objects)

    def restore(self, dynamodb: Any, s3: Any, bucket: str) -> tuple[int, int]:
        """Put back what save() wrote, into tables and a bucket the stack has just made;
        (items, objects) restored."""
        if not (self._data / "tables.json").exists():
            return 0, 0
        tables = json.loads((self._data / "tables.json").read_text())
        items = 0
        existing = set(dynamodb.list_tables()["TableNames"])
        for table, rows in tables.items():
            if table not in existing:  # a table the template no longer has
                continue
            for row in rows:
                dynamodb.put_item(TableName=table, Item=_typed(row))
            items += len(rows)
        objects = json.loads((self._data / "objects.json").read_text())
        for key, facts in objects.items():
            body = (self._data / "objects" / facts["file"]).read_bytes()
            s3.put_object(
                Bucket=bucket, Key=key, Body=body, ContentType=facts["ContentType"], Metadata=facts["Metadata"]
            )
        return items, len(objects)


def end_interrupted_jobs(table: Any) -> list[str]:
    """Fail the jobs a stop left queued or processing (`table`: the jobs table, a boto3 Table);
    their ids. The sweeper sends their failed events, as for any job whose workflow ended first."""
    from boto3.dynamodb.conditions import Attr

    from zimage.jobs.model import ACTIVE_STATUSES
    from zimage.jobs.store import JobStore

    jobs = JobStore(table)
    ended = []
    scan: dict[str, Any] = {"FilterExpression": Attr("status").is_in(list(ACTIVE_STATUSES))}
    while True:
        page = table.scan(**scan)
        for item in page["Items"]:
            _, changed = jobs.end_as_failed(item["job_id"], code=INTERRUPTED, message=INTERRUPTED_MESSAGE)
            if changed:
                ended.append(item["job_id"])
        if "LastEvaluatedKey" not in page:
            return ended
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _portable(item: dict) -> dict:
    """A DynamoDB item (attribute -> typed value) in JSON: binary values as base64."""
    return {name: _convert(typed, _b64) for name, typed in item.items()}


def _typed(item: dict) -> dict:
    return {name: _convert(typed, base64.b64decode) for name, typed in item.items()}


def _convert(typed: dict, binary: Any) -> dict:
    ((kind, value),) = typed.items()
    if kind == "B":
        return {kind: binary(value)}
    if kind == "BS":
        return {kind: [binary(v) for v in value]}
    if kind == "M":
        return {kind: {k: _convert(v, binary) for k, v in value.items()}}
    if kind == "L":
        return {kind: [_convert(v, binary) for v in value]}
    return {kind: value}


def _b64(value: bytes) -> str:
    return base64.b64encode(bytes(value)).decode()
