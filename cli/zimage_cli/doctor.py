"""`zimage doctor`: can this deployment make images for this key, and if not, what to do.

The checks run in order, each needing the one before: the API answers, the API key is accepted,
the service can use its Novita key (GET /v1/health, which starts no paid task), and, with
consent, one small image end to end, downloaded and checked against what the job says of it.
"""

from __future__ import annotations

import hashlib
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

import urllib3

from zimage_cli.client import ApiError, ImageApi

SMALL_SIZE = "256*256"  # the smallest the model makes: the cheapest image
TEST_PROMPT = "zimage doctor: a small test image of a lighthouse"
KEY_PARAMETER = "the parameter NovitaApiKeyName names (default /zimage/novita-api-key)"
# The first bytes of each image type the API can answer.
SIGNATURES = {"image/jpeg": (b"\xff\xd8\xff",), "image/png": (b"\x89PNG\r\n\x1a\n",), "image/webp": (b"RIFF",)}

# What to do about each error code the checks can meet; the service's own message says what is wrong.
FIXES = {
    "rate_limited": "the key's usage plan is at its rate limit: wait a little, or raise ApiRateLimit",
    "quota_exceeded": "a quota is used up: wait until it renews (Retry-After), or raise the cap the message names",
    "upstream_key_unavailable": (
        f"store the Novita key in {KEY_PARAMETER} as a SecureString (docs/deploy.md), "
        "or let the functions' role read it and decrypt it with its KMS key"
    ),
    "upstream_key_refused": (
        f"put a valid Novita key (https://novita.ai/settings/key-management) into {KEY_PARAMETER}, with --overwrite"
    ),
    "upstream_balance_empty": "top up the Novita account the key belongs to (https://novita.ai/billing)",
    "inconsistent_settings": "deploy again with the parameters the message names changed (docs/deploy.md)",
    "upstream_rate_limited": "Novita is at its rate limit for this model: try again in a minute",
    "upstream_unavailable": "Novita is unavailable: try again later (https://status.novita.ai)",
    "upstream_timeout": "Novita did not answer in time: try again later",
    "workflow_unavailable": "the workflow could not start: see the API function's logs",
}


@dataclass
class Check:
    name: str
    outcome: str  # ok | failed | skipped
    found: str
    fix: str = ""


def diagnose(api: ImageApi, *, generate: bool | str, timeout: float = 120) -> list[Check]:
    """Run the checks in order and stop at the first that fails. `generate` is True to make one
    image, or the reason it is skipped."""
    checks: list[Check] = []
    steps: list[tuple[str, Callable[[], str]]] = [
        ("reachable", lambda: _reachable(api)),
        ("API key", lambda: _api_key(api)),
        ("Novita key", lambda: _novita_key(api)),
    ]
    if generate is True:
        steps.append(("one image", lambda: _one_image(api, timeout)))
    for name, step in steps:
        try:
            checks.append(Check(name, "ok", step()))
        except Failed as exc:
            checks.append(Check(name, "failed", exc.found, exc.fix))
            return checks
    if generate is not True:
        checks.append(Check("one image", "skipped", str(generate)))
    return checks


class Failed(Exception):
    def __init__(self, found: str, fix: str):
        super().__init__(found)
        self.found, self.fix = found, fix


def _answer(exc: ApiError, fix: str | None = None) -> Failed:
    detail = f" {exc.code}" if exc.code else ""
    message = str(exc).split(": ", 1)[-1]
    return Failed(f"HTTP {exc.status}{detail}: {message}", fix or FIXES.get(exc.code or "", _by_status(exc.status)))


def _by_status(status: int) -> str:
    if status >= 500:
        return "the service failed: see the API function's logs in CloudWatch"
    return "see the message above"


def _reachable(api: ImageApi) -> str:
    try:
        document = api.openapi()
    except urllib3.exceptions.HTTPError as exc:
        raise Failed(
            f"no answer from {api.url}: {type(exc).__name__}",
            "check --url or ZIMAGE_URL: the stack's ApiUrl output, or the address `make run` printed",
        ) from None
    except ApiError as exc:
        raise _answer(
            exc, "check --url or ZIMAGE_URL: it must end with the stage (…/dev), as the stack's ApiUrl does"
        ) from None
    return f"{api.url} answers (API version {document.get('info', {}).get('version', '?')})"


def _api_key(api: ImageApi) -> str:
    try:
        api.list(limit=1)
    except ApiError as exc:
        if exc.status == 403:
            raise Failed(
                "HTTP 403: the API key is missing or unknown",
                "check --api-key or ZIMAGE_API_KEY: `aws apigateway get-api-key --api-key <ApiKeyId output> "
                "--include-value` (docs/deploy.md)",
            ) from None
        raise _answer(exc) from None
    return "accepted"


def _novita_key(api: ImageApi) -> str:
    try:
        health = api.health()
    except ApiError as exc:
        raise _answer(exc) from None
    return ", ".join(f"{name} {found}" for name, found in health.get("checks", {}).items())


def _one_image(api: ImageApi, timeout: float) -> str:
    started = time.monotonic()
    try:
        job = api.submit(TEST_PROMPT, size=SMALL_SIZE, idempotency_key=f"doctor-{uuid.uuid4()}")
        job = api.follow(job, timeout=timeout)
    except ApiError as exc:
        raise _answer(exc) from None
    if job["status"] != "succeeded":
        error = job.get("error") or {}
        if error:
            found = f"{job['id']} {job['status']}: {error.get('code')}: {error.get('message')}"
            raise Failed(found, FIXES.get(error.get("code", ""), "see the job's error above"))
        raise Failed(f"{job['id']} still {job['status']} after {timeout:.0f}s", "try again with a longer --timeout")
    image = job["image"]
    try:
        data = api.download(image["url"])
    except (ApiError, urllib3.exceptions.HTTPError) as exc:
        raise Failed(
            f"the image URL did not download: {exc}",
            "presigned URLs must reach the bucket's regional host: check the client's network and clock",
        ) from None
    if hashlib.sha256(data).hexdigest() != image["sha256"] or len(data) != image["bytes"]:
        raise Failed("the downloaded image differs from what the job says of it", "see the poll function's logs")
    if not data.startswith(SIGNATURES.get(image["content_type"], (b"",))):
        raise Failed(f"the download is not a {image['content_type']}", "see the poll function's logs")
    return (
        f"{job['id']}: {image['width']}x{image['height']} {image['content_type']}, {image['bytes']} bytes, "
        f"downloaded and checked in {time.monotonic() - started:.1f}s"
    )


def consent(*, yes: bool, no_generate: bool, ask: Callable[[str], str] = input) -> bool | str:
    """True when one paid image may be made, else why not."""
    if no_generate:
        return "--no-generate"
    if yes:
        return True
    if not sys.stdin.isatty():
        return "not asked: pass --yes to make one small paid image, or --no-generate"
    reply = ask(f"Make one {SMALL_SIZE.replace('*', 'x')} image? Novita charges for it. [y/N] ")
    return True if reply.strip().lower() in ("y", "yes") else "declined"


def report(checks: list[Check]) -> str:
    lines = []
    for check in checks:
        lines.append(f"{check.outcome:<8}{check.name:<12}{check.found}")
        if check.fix:
            lines.append(f"{'':<8}{'what to do':<12}{check.fix}")
    return "\n".join(lines)


def as_json(checks: list[Check]) -> dict:
    return {"ok": all(c.outcome != "failed" for c in checks), "checks": [asdict(c) for c in checks]}
