"""`make demo`: one image, end to end, made by the `zimage` CLI exactly as a user would.

Uses the local stack already serving at the URL, or starts one in-process when none answers,
then runs `zimage generate`: submit through the HTTP API, progress, download through the
presigned URL, save (default out/<job id>.<ext>). Exits non-zero when the job fails.
"""

from __future__ import annotations

import os
from contextlib import ExitStack

import urllib3
from zimage_cli.__main__ import main as zimage

from local.stack import LocalStack


def stack_is_serving(url: str) -> bool:
    try:
        urllib3.request("GET", f"{url}/v1/openapi.json", timeout=1, retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return True


def run_demo(*, url: str, api_key: str, prompt: str, size: str, seed: int, out: str, timeout: float) -> int:
    with ExitStack() as cleanup:
        if not stack_is_serving(url):
            print(f"no stack at {url}; starting one in this process")
            stack = LocalStack(
                api_port=0,
                api_keys={api_key: "demo-key"},
                parameters={"LogLevel": "WARNING"},
                novita_base_url=os.environ.get("NOVITA_BASE_URL"),
                novita_api_key=os.environ.get("NOVITA_API_KEY"),
            )
            cleanup.enter_context(stack)
            cleanup.callback(
                print,
                "(the stack made for this demo stops with it, and the URL above with it; make run keeps one serving)",
            )
            url = stack.api_url
        # The command it runs, with the key left out of the terminal.
        print(f"$ zimage generate {prompt!r} --size {size} --seed {seed} --url {url} --api-key ... -o {out}")
        return zimage(
            [
                "generate",
                prompt,
                "--size",
                size,
                "--seed",
                str(seed),
                "--timeout",
                str(timeout),
                "--url",
                url,
                "--api-key",
                api_key,
                "-o",
                out,
            ]
        )
