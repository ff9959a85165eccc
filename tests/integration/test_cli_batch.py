"""`zimage batch` against the local stack: a JSON Lines file in, images and a manifest out,
rate limits waited out, a daily cap stopping it, and a second run that pays for nothing twice."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from zimage_cli.__main__ import main as zimage

from local.stack import DEV_API_KEY
from zimage.jobs.quota import key_counter_id
from zimage.runtime import shared_runtime

LIMITED = {
    "status": 429,
    "headers": {"Retry-After": "1"},
    "body": {"code": 429, "reason": "RATE_LIMIT_EXCEEDED", "message": "too many requests", "metadata": {}},
}


def run_batch(stack, capsys, source: Path, folder: Path, *more: str) -> tuple[int, str, str]:
    code = zimage(["batch", str(source), "-o", f"{folder}/", "--url", stack.api_url, "--api-key", DEV_API_KEY, *more])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def manifest(folder: Path) -> dict[int, dict]:
    """The last record of each line."""
    records = [json.loads(text) for text in (folder / "manifest.jsonl").read_text().splitlines()]
    return {record["line"]: record for record in records}


def write_lines(path: Path, *lines: object) -> Path:
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_a_batch_saves_each_image_writes_the_manifest_and_exits_1_when_a_line_failed(stack, emulator, capsys, tmp_path):
    # GIVEN three good lines, a line the API refuses and a line that is not JSON, and an upstream
    # that rate-limits the first submit
    source = write_lines(
        tmp_path / "prompts.jsonl",
        {"prompt": "a red fox", "size": "256*256", "seed": 1, "metadata": {"sku": "fox"}},
        {"prompt": "a grey owl", "size": "320*256", "seed": 2},
        "",
        {"prompt": "a wide one", "size": "4096*256"},
        "{not json",
        {"prompt": "a hare", "size": "256*320", "seed": 3},
    )
    emulator.script("submit", LIMITED)
    folder = tmp_path / "batch"

    # WHEN the batch runs
    code, out, err = run_batch(stack, capsys, source, folder)

    # THEN the good lines' images are saved and recorded with their sha256, the others recorded failed
    assert code == 1, err
    lines = manifest(folder)
    assert sorted(lines) == [1, 2, 4, 5, 6]  # line numbers as an editor shows them; blank lines skipped
    for number in (1, 2, 6):
        record = lines[number]
        assert record["status"] == "succeeded", record
        assert hashlib.sha256(Path(record["file"]).read_bytes()).hexdigest() == record["sha256"]
        assert Path(record["file"]).name.startswith(f"{number:05d}-{record['job_id']}")
    assert lines[4]["status"] == "failed" and "invalid_request" in lines[4]["error"]
    assert lines[5]["status"] == "failed" and "not a request" in lines[5]["error"]
    assert "batch: 5 lines: 3 succeeded (0 done before), 2 failed, 0 not started" in out
    assert emulator.stats()["calls"]["submit"] == 4  # the rate-limited submit, then one per good line


def test_a_second_run_skips_done_lines_and_an_interrupted_line_gets_its_first_job_back(
    stack, emulator, capsys, tmp_path
):
    # GIVEN a batch that ran, then lost the record of a line that succeeded (interrupted after
    # its submit)
    source = write_lines(
        tmp_path / "prompts.jsonl",
        {"prompt": "one", "size": "256*256", "seed": 1},
        {"prompt": "two", "size": "256*256", "seed": 2},
        {"prompt": "three", "size": "256*256", "seed": 3},
    )
    folder = tmp_path / "batch"
    run_batch(stack, capsys, source, folder)
    first = manifest(folder)
    done = [number for number, record in first.items() if record["status"] == "succeeded"]
    assert len(done) >= 2, first  # a busy machine may fail a line (upstream_timeout); two make the case
    lost = done[-1]
    kept = (folder / "manifest.jsonl").read_text().splitlines()
    (folder / "manifest.jsonl").write_text("\n".join(line for line in kept if json.loads(line)["line"] != lost) + "\n")
    tasks = len(emulator.tasks)

    # WHEN it runs again
    _, out, _ = run_batch(stack, capsys, source, folder)

    # THEN the lines still recorded done are skipped, and the lost one, submitted again with the
    # same Idempotency-Key, gets its first job back: no new task for either
    assert f"({len(done) - 1} done before)" in out
    assert manifest(folder)[lost]["job_id"] == first[lost]["job_id"]
    prompts = {number: json.loads(text)["prompt"] for number, text in enumerate(source.read_text().splitlines(), 1)}
    new_prompts = [task.prompt for task in list(emulator.tasks.values())[tasks:]]
    assert not {prompts[number] for number in done} & set(new_prompts)


@pytest.fixture
def daily_cap_of_one(stack, monkeypatch):
    runtime = shared_runtime()
    table = stack.resource("dynamodb").Table(stack.table)
    counter = key_counter_id("key-one", datetime.now(UTC).date().isoformat())
    table.delete_item(Key={"job_id": counter})
    monkeypatch.setattr(runtime, "settings", runtime.settings._replace(max_jobs_per_key_per_day=1))
    yield
    table.delete_item(Key={"job_id": counter})


def test_a_daily_cap_stops_the_batch_and_says_when_to_resume(stack, emulator, capsys, tmp_path, daily_cap_of_one):
    source = write_lines(tmp_path / "prompts.jsonl", *({"prompt": f"fox {n}", "size": "256*256"} for n in range(4)))
    folder = tmp_path / "batch"

    code, out, err = run_batch(stack, capsys, source, folder, "--concurrency", "1")

    assert code == 1
    assert [record["status"] for record in manifest(folder).values()] == ["succeeded"]
    assert "3 not started" in out
    assert "daily cap" in err and "run the same command again after" in err and "UTC to resume" in err
    assert emulator.stats()["calls"]["submit"] == 1  # nothing refused was paid for
