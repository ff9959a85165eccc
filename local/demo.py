"""`make demo`: one image, end to end, exactly as a client would make it.

Uses the local stack already serving at the URL, or starts one in-process when none answers.
Submits through the HTTP API, shows progress, downloads the image through its presigned URL and
saves it. Exits 1 with the job's error when the job fails.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import urllib3

from local.stack import LocalStack

TERMINAL = ("succeeded", "failed", "canceled")
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


def stack_is_serving(url: str, api_key: str) -> bool:
    try:
        urllib3.request("GET", f"{url}/v1/images/img_0", headers={"x-api-key": api_key}, timeout=1, retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return True


def run_demo(*, url: str, api_key: str, prompt: str, size: str, seed: int, out: Path | None, timeout: float) -> int:
    with ExitStack() as cleanup:
        if not stack_is_serving(url, api_key):
            print(f"no stack at {url}; starting one in this process")
            stack = LocalStack(api_port=0, api_keys={api_key: "demo-key"}, parameters={"LogLevel": "WARNING"})
            cleanup.enter_context(stack)
            url = stack.api_url
        return _make_one(url, api_key, prompt, size, seed, out, timeout)


def _make_one(url: str, api_key: str, prompt: str, size: str, seed: int, out: Path | None, timeout: float) -> int:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=3, read=30), retries=False)
    headers = {"x-api-key": api_key, "Content-Type": "application/json"}
    started = time.monotonic()
    answer = http.request(
        "POST", f"{url}/v1/images", body=json.dumps({"prompt": prompt, "size": size, "seed": seed}), headers=headers
    )
    job = answer.json()
    if answer.status != 202:
        print(f"submit refused: HTTP {answer.status} {json.dumps(job)}", file=sys.stderr)
        return 1
    accepted = time.monotonic()
    print(f"job {job['id']} accepted in {accepted - started:.2f}s")

    last = None
    while job["status"] not in TERMINAL:
        if time.monotonic() - started > timeout:
            print(f"gave up after {timeout:.0f}s; the job is still {job['status']}", file=sys.stderr)
            return 1
        time.sleep(0.25)
        job = http.request("GET", f"{url}/v1/images/{job['id']}", headers=headers).json()
        shown = (job["status"], job.get("progress"), job.get("eta_seconds"))
        if shown != last:
            extra = "".join(
                f" {name} {value}" for name, value in (("progress", shown[1]), ("eta", shown[2])) if value is not None
            )
            print(f"  {time.monotonic() - started:5.2f}s  {job['status']}{extra}")
            last = shown
    finished = time.monotonic()
    if job["status"] != "succeeded":
        error = job.get("error", {})
        print(f"job {job['status']}: {error.get('code')}: {error.get('message')}", file=sys.stderr)
        return 1

    image = job["image"]
    download = http.request("GET", image["url"])
    if download.status != 200:
        print(f"the presigned URL answered HTTP {download.status}", file=sys.stderr)
        return 1
    path = out or Path("out") / f"{job['id']}.{EXTENSIONS.get(image['content_type'], 'img')}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(download.data)
    done = time.monotonic()
    print(f"image:  {image['width']}x{image['height']} {image['content_type']}, {len(download.data)} bytes")
    print(f"url:    {image['url']}")
    print(f"saved:  {path}")
    print(
        f"timing: submit {accepted - started:.2f}s, generate+store {finished - accepted:.2f}s, "
        f"download {done - finished:.2f}s, total {done - started:.2f}s"
    )
    return 0
