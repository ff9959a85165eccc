"""`make demo`: one image, end to end, made by the `zimage` CLI exactly as a user would.

Uses the local stack already serving at the URL, or starts one in-process when none answers,
then runs `zimage generate`: submit through the HTTP API, progress, download through the
presigned URL, save (default out/<job id>.<ext>). Exits non-zero when the job fails. Without a
seed it picks one at random and prints it, so that the same picture can be made again.
"""

from __future__ import annotations

import os
import random
import shlex
from contextlib import ExitStack

import urllib3
from zimage_cli.__main__ import main as zimage

from local.stack import LocalStack

MAX_SEED = 2**31 - 1  # the API's largest seed


def stack_is_serving(url: str) -> bool:
    try:
        # Nothing listening refuses at once; a busy stack may take seconds to write its document,
        # and taking it for absent would start a second stack in this process.
        urllib3.request("GET", f"{url}/v1/openapi.json", timeout=urllib3.Timeout(connect=1, read=15), retries=False)
    except urllib3.exceptions.HTTPError:
        return False
    return True


def run_demo(*, url: str, api_key: str, prompt: str, size: str, seed: int | None, out: str, timeout: float) -> int:
    """Make one image with the CLI; without a seed, with a random one that it prints."""
    if seed is None:
        seed = random.randint(0, MAX_SEED)
        print(f"seed {seed}, picked at random: SEED={seed} with the same prompt and size draws this picture again")
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
        # The command it runs, quoted for a shell (a bare 1024*768 is a glob), the key left out.
        shown = shlex.join(["zimage", "generate", prompt, "--size", size, "--seed", str(seed), "--url", url])
        print(f"$ {shown} --api-key ... -o {shlex.quote(out)}")
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
