"""zimage batch with a stand-in for the API: a line that fails any way is one failed line in the
manifest and the summary, never the end of the batch."""

from __future__ import annotations

import hashlib
import json

import pytest
from urllib3.exceptions import NewConnectionError
from zimage_cli.batch import MANIFEST, run_batch
from zimage_cli.client import ApiError

IMAGE = b"\xff\xd8 an image"


class StandInApi:
    """Every job succeeds at once; the download of the prompts in `broken` fails as given."""

    def __init__(self, broken: dict[str, Exception]):
        self.broken = broken

    def submit(self, prompt: str, **_: object) -> dict:
        return {"id": f"img_{prompt}", "status": "queued", "prompt": prompt}

    def follow(self, job: dict, *, timeout: float) -> dict:
        image = {"url": job["prompt"], "sha256": hashlib.sha256(IMAGE).hexdigest(), "content_type": "image/jpeg"}
        return {**job, "status": "succeeded", "image": image}

    def download(self, url: str) -> bytes:
        if url in self.broken:
            raise self.broken[url]
        return IMAGE


@pytest.mark.parametrize(
    "failure",
    [
        ApiError(403, {"message": "the image URL refused the download"}),
        NewConnectionError(None, "connection refused"),
    ],
    ids=["refused", "unreachable"],
)
def test_a_download_that_fails_is_one_failed_line_and_the_rest_go_on(tmp_path, capsys, failure):
    source = tmp_path / "prompts.jsonl"
    source.write_text("\n".join(json.dumps({"prompt": p}) for p in ("fox", "owl", "cat")) + "\n")

    status = run_batch(StandInApi({"owl": failure}), source, tmp_path / "out", concurrency=2, timeout=5, quiet=True)

    assert status == 1
    assert "3 lines: 2 succeeded (0 done before), 1 failed, 0 not started" in capsys.readouterr().out
    records = {r["line"]: r for r in map(json.loads, (tmp_path / "out" / MANIFEST).read_text().splitlines())}
    assert [records[n]["status"] for n in (1, 2, 3)] == ["succeeded", "failed", "succeeded"]
    assert records[2]["job_id"] == "img_owl" and records[2]["error"]
