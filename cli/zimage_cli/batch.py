"""`zimage batch prompts.jsonl -o out/batch/`: one image per line of a JSON Lines file.

Each line is a POST body: {"prompt": ..., "size": ..., "seed": ..., "metadata": {...}}. Lines are
submitted over HTTP a few at a time, each with an Idempotency-Key made from its number and its
content, so submitting a line again (a retry, or a second run) returns its first job instead of
paying for a new one. Every ended line is appended to the folder's manifest.jsonl (line, job id,
status, file, sha256, error); a second run skips the lines it shows done, so an interrupted batch
resumes where it stopped. A rate limit is waited out (Retry-After); a daily cap (quota_exceeded)
stops the batch, saying when it renews.
"""

from __future__ import annotations

import hashlib
import json
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tqdm import tqdm
from urllib3.exceptions import HTTPError

from zimage_cli.client import EXTENSIONS, ApiError, ImageApi

MANIFEST = "manifest.jsonl"
SUCCEEDED, FAILED = "succeeded", "failed"
RATE_LIMITED = ("rate_limited", "upstream_rate_limited")
# A rate limit without Retry-After is waited out this long, doubling, before the line gives up.
RATE_LIMIT_WAIT_SECONDS = 2.0
RATE_LIMIT_TRIES = 8


@dataclass(frozen=True)
class Line:
    number: int  # 1-based, as an editor shows it
    text: str

    @property
    def idempotency_key(self) -> str:
        """The same line in the same place gets the same key, so the service returns its job."""
        digest = hashlib.sha256(f"{self.number}\n{self.text.strip()}".encode()).hexdigest()
        return f"batch-{self.number}-{digest[:40]}"


class QuotaReached(Exception):
    def __init__(self, message: str, resume_at: datetime | None):
        super().__init__(message)
        self.resume_at = resume_at


def read_lines(path: Path) -> list[Line]:
    return [Line(number, text) for number, text in enumerate(path.read_text().splitlines(), start=1) if text.strip()]


def done_lines(manifest: Path) -> dict[int, dict]:
    """The manifest's last record of each line that succeeded and whose file is still there."""
    last: dict[int, dict] = {}
    if manifest.exists():
        for text in manifest.read_text().splitlines():
            try:
                record = json.loads(text)
            except ValueError:  # a line cut short by an interruption
                continue
            last[record["line"]] = record
    return {
        number: record
        for number, record in last.items()
        if record.get("status") == SUCCEEDED and record.get("file") and Path(record["file"]).exists()
    }


class Batch:
    def __init__(self, api: ImageApi, folder: Path, *, concurrency: int, timeout: float):
        self.api = api
        self.folder = folder
        self.manifest = folder / MANIFEST
        self.concurrency = concurrency
        self.timeout = timeout
        self.stopped = threading.Event()
        self.quota: QuotaReached | None = None
        self._write = threading.Lock()

    def run(self, lines: list[Line], bar: Any) -> Counter[str]:
        counts: Counter[str] = Counter()

        def count(outcome: str) -> None:
            with self._write:  # the lines run on several threads
                counts[outcome] += 1

        def one(line: Line) -> None:
            if self.stopped.is_set():
                count("not started")
                return
            try:
                record = self.make(line)
            except QuotaReached as reached:
                self.quota = self.quota or reached
                self.stopped.set()
                count("not started")
                return
            self.record(record)
            count(record["status"])
            bar.update(1)

        with ThreadPoolExecutor(self.concurrency) as pool:
            list(pool.map(one, lines))
        return counts

    def make(self, line: Line) -> dict:
        record: dict[str, Any] = {"line": line.number, "job_id": None, "status": FAILED, "file": None, "sha256": None}
        try:
            body = json.loads(line.text)
            if not isinstance(body, dict) or not isinstance(body.get("prompt"), str):
                raise ValueError('each line must be a JSON object with a "prompt"')
        except ValueError as exc:
            return {**record, "error": f"not a request: {exc}"}
        try:
            job = self.submit(body, line)
            record["job_id"] = job["id"]
            job = self.api.follow(job, timeout=self.timeout)
            if job["status"] != SUCCEEDED:
                error = job.get("error") or {}
                reason = f"{error.get('code')}: {error.get('message')}" if error else f"still {job['status']}"
                return {**record, "status": job["status"], "error": reason}
            image = job["image"]
            data = self.api.download(image["url"])
        except ApiError as exc:
            if exc.code == "quota_exceeded":
                raise QuotaReached(str(exc), _resume_at(exc)) from None
            return {**record, "error": f"{exc.code or exc.status}: {exc}"}
        except HTTPError as exc:  # the service or the bucket unreachable, after the client's own retries
            return {**record, "error": f"could not be reached: {exc}"}
        digest = hashlib.sha256(data).hexdigest()
        if digest != image["sha256"]:
            return {**record, "error": "the downloaded image does not match its sha256"}
        path = self.folder / f"{line.number:05d}-{job['id']}.{EXTENSIONS.get(image['content_type'], 'img')}"
        path.write_bytes(data)
        return {**record, "status": SUCCEEDED, "file": str(path), "sha256": digest, "error": None}

    def submit(self, body: dict, line: Line) -> dict:
        """Submit the line, waiting out rate limits; the same key each time, so never twice."""
        wait = RATE_LIMIT_WAIT_SECONDS
        for tries_left in range(RATE_LIMIT_TRIES, 0, -1):
            try:
                return self.api.submit(
                    body["prompt"],
                    size=body.get("size"),
                    seed=body.get("seed"),
                    metadata=body.get("metadata"),
                    idempotency_key=line.idempotency_key,
                )
            except ApiError as exc:
                if exc.code not in RATE_LIMITED or tries_left == 1 or self.stopped.is_set():
                    raise
                time.sleep(exc.retry_after or wait)
                wait *= 2
        raise AssertionError("unreachable: the last try returns or raises")

    def record(self, record: dict) -> None:
        with self._write, self.manifest.open("a") as manifest:
            manifest.write(json.dumps(record) + "\n")


def _resume_at(exc: ApiError) -> datetime | None:
    seconds = exc.retry_after
    return datetime.now(UTC) + timedelta(seconds=seconds) if seconds is not None else None


def run_batch(api: ImageApi, source: Path, folder: Path, *, concurrency: int, timeout: float, quiet: bool) -> int:
    """The batch command: 0 when every line is done, 1 when any failed or was not started."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = read_lines(source)
    done = done_lines(folder / MANIFEST)
    todo = [line for line in lines if line.number not in done]
    batch = Batch(api, folder, concurrency=concurrency, timeout=timeout)
    with tqdm(total=len(todo), unit="image", disable=quiet or None, file=sys.stderr, desc="batch") as bar:
        counts = batch.run(todo, bar)
    summary = (
        f"batch: {len(lines)} lines: {counts[SUCCEEDED] + len(done)} succeeded ({len(done)} done before), "
        f"{sum(n for status, n in counts.items() if status not in (SUCCEEDED, 'not started'))} failed, "
        f"{counts['not started']} not started; manifest {folder / MANIFEST}"
    )
    print(summary)
    if batch.quota:
        when = batch.quota.resume_at.strftime("%Y-%m-%d %H:%M:%S UTC") if batch.quota.resume_at else "later"
        print(f"zimage: stopped: {batch.quota}; run the same command again after {when} to resume", file=sys.stderr)
    return 0 if len(done) + counts[SUCCEEDED] == len(lines) else 1
