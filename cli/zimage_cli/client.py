"""A small HTTP client of the v1 API, used by the CLI and usable from scripts."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import urllib3

TERMINAL = ("succeeded", "failed", "canceled")
# A look at an image's URL is repeated a few times a second: one that hangs is skipped, not waited for.
LOOK_TIMEOUT = urllib3.Timeout(connect=2, read=2)
# A saved file's extension, by the image's content type.
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class ApiError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        error = body.get("error", {}) if isinstance(body, dict) else {}
        message = error.get("message") or (body.get("message") if isinstance(body, dict) else None) or str(body)
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.body = body
        self.code = error.get("code")
        self.headers = dict(headers or {})

    @property
    def retry_after(self) -> float | None:
        """The answer's Retry-After in seconds, when it gave one."""
        value = self.headers.get("Retry-After") or self.headers.get("retry-after")
        return float(value) if value and value.isdigit() else None


@dataclass
class ImageApi:
    url: str
    api_key: str
    timeout: float = 35.0

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        # Reads are safe to repeat; a POST is repeated only with an Idempotency-Key (see generate).
        # The last answer is kept when the retries run out, so its error model reaches the user.
        retries = urllib3.Retry(
            total=3,
            backoff_factor=0.5,
            status_forcelist=(502, 503, 504),
            allowed_methods={"GET"},
            raise_on_status=False,
        )
        self._http = urllib3.PoolManager(retries=retries, timeout=urllib3.Timeout(connect=5, read=self.timeout))

    def submit(
        self,
        prompt: str,
        *,
        size: str | None = None,
        seed: int | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, str] | None = None,
    ) -> dict:
        body: dict[str, Any] = {"prompt": prompt}
        if size:
            body["size"] = size
        if seed is not None:
            body["seed"] = seed
        if metadata is not None:
            body["metadata"] = metadata
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._call("POST", "/v1/images", body=body, headers=headers, expect=(200, 202))

    def get(self, job_id: str, *, wait: int | None = None) -> dict:
        """The job; with `wait`, the service holds the answer up to that many seconds for it to end."""
        headers = {"Prefer": f"wait={wait}"} if wait else None
        return self._call("GET", f"/v1/images/{job_id}", headers=headers)

    def cancel(self, job_id: str) -> dict:
        return self._call("DELETE", f"/v1/images/{job_id}")

    def list(self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None) -> dict:
        query = {k: v for k, v in (("status", status), ("limit", limit), ("cursor", cursor)) if v is not None}
        return self._call("GET", "/v1/images" + (f"?{urlencode(query)}" if query else ""))

    def follow(self, job: dict, *, timeout: float, on_change: Callable[[dict], None] | None = None) -> dict:
        """Read the job until it ends; `on_change` sees every new status, progress or eta. `job`
        is the job as last read (the submit's answer will do): see zimage_cli.following."""
        from zimage_cli.following import follow

        return follow(self, job, timeout=timeout, on_change=on_change)

    def health(self) -> dict:
        """GET /v1/health, once: its 503s name a misconfiguration that a retry cannot fix."""
        return self._call("GET", "/v1/health", retries=False)

    def openapi(self) -> dict:
        return self._call("GET", "/v1/openapi.json")

    def image_ready(self, url: str) -> bool:
        """Whether a running job's image is at its `links.image` yet: one ranged GET of its first
        byte. S3 answers 403 for an object not there yet (404 only to a signer allowed to list the
        bucket); any failure is "not yet", since reading the job tells what S3 cannot."""
        try:
            answer = self._http.request("GET", url, headers={"Range": "bytes=0-0"}, retries=False, timeout=LOOK_TIMEOUT)
        except urllib3.exceptions.HTTPError:
            return False
        return answer.status in (200, 206)

    def download(self, url: str) -> bytes:
        answer = self._http.request("GET", url)
        if answer.status != 200:
            raise ApiError(answer.status, {"message": "the image URL refused the download"})
        return answer.data

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: dict | None = None,
        headers: dict | None = None,
        expect: tuple[int, ...] = (200,),
        retries: urllib3.Retry | bool | None = None,
    ) -> dict:
        sent = {"x-api-key": self.api_key, **(headers or {})}
        data = None
        if body is not None:
            sent["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        extra = {} if retries is None else {"retries": retries}
        answer = self._http.request(method, self.url + path, body=data, headers=sent, **extra)
        try:
            parsed = json.loads(answer.data or b"{}")
        except ValueError:
            parsed = {"message": answer.data[:200].decode("utf-8", "replace")}
        if answer.status not in expect:
            raise ApiError(answer.status, parsed, dict(answer.headers))
        return parsed
