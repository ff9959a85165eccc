"""Client for Novita's async Z-Image-Turbo API.

Two rules shape it. Reads (task results, image downloads) are retried on 429, 5xx, connection
errors and timeouts, because repeating a GET costs nothing. A submit starts a paid task, so it is
retried only where the upstream surely made no task: the connection never opened, or the answer
was 429 (a rate-limited request is refused before any work starts).
"""

from __future__ import annotations

import enum
import json
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ResponseError,
)
from urllib3.util import Retry, Timeout

from zimage.tracing import tracer
from zimage.upstream.errors import (
    InvalidImage,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

SUBMIT_PATH = "/v3/async/z-image-turbo"
RESULT_PATH = "/v3/async/task-result"
KEY_CHECK_TASK_ID = "zimage-key-check"  # no task has this id: asking for it costs nothing
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
# An answer body larger than this is refused; base64 output of the largest image fits well below.
MAX_JSON_BYTES = 32 * 1024 * 1024
# Longest time one body may take to arrive, however steadily it trickles.
BODY_SECONDS = 30.0


class TaskStatus(enum.StrEnum):
    QUEUED = "TASK_STATUS_QUEUED"
    PROCESSING = "TASK_STATUS_PROCESSING"
    SUCCEED = "TASK_STATUS_SUCCEED"
    FAILED = "TASK_STATUS_FAILED"
    UNKNOWN = "TASK_STATUS_UNKNOWN"

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.SUCCEED, TaskStatus.FAILED)


class UpstreamImage(NamedTuple):
    """One entry of `images[]`: `location` is a URL or, with base64 output, the data itself."""

    location: str
    image_type: str | None = None
    url_ttl_seconds: int | None = None

    @property
    def is_url(self) -> bool:
        """Whether `location` is where to download the image, rather than the image itself."""
        return self.location.startswith(("https://", "http://"))


class TaskResult(NamedTuple):
    status: TaskStatus
    reason: str = ""
    eta_seconds: float | None = None
    progress_percent: float | None = None
    images: tuple[UpstreamImage, ...] = ()
    seed: int | None = None


class CappedRetry(Retry):
    """urllib3's Retry, with two bounds a Lambda needs.

    urllib3 sleeps for the whole Retry-After the server asks for. A Lambda cannot wait a minute
    inside one call, so longer requests are shortened to `RETRY_AFTER_CAP`; if the upstream still
    refuses, its answer (and its Retry-After) is passed on to the caller.

    urllib3 bounds each attempt and each socket read, never a whole call. Given `ends_at` (a
    time.monotonic() moment) and `attempt_seconds` (the longest one attempt may take), a retry is
    made only if its wait and a whole attempt still end by then; otherwise the call ends as if
    its retries were spent. Quick failures (a refused connection, a 503) keep all their retries.
    """

    RETRY_AFTER_CAP = 4.0

    def __init__(self, *args: Any, ends_at: float = math.inf, attempt_seconds: float = 0.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ends_at, self.attempt_seconds = ends_at, attempt_seconds

    def new(self, **kwargs: Any) -> CappedRetry:
        kwargs.setdefault("ends_at", self.ends_at)
        kwargs.setdefault("attempt_seconds", self.attempt_seconds)
        return super().new(**kwargs)

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.RETRY_AFTER_CAP)

    def increment(self, method: str | None = None, url: str | None = None, *args: Any, **kwargs: Any) -> CappedRetry:
        retry = super().increment(method, url, *args, **kwargs)  # raises once the retries are spent
        response, error = kwargs.get("response"), kwargs.get("error")
        if time.monotonic() + retry.longest_wait(response) + self.attempt_seconds > self.ends_at:
            reason = error or ResponseError("no time left for another attempt")
            raise MaxRetryError(kwargs.get("_pool"), url or "", reason) from reason  # type: ignore[arg-type]
        return retry

    def longest_wait(self, response: Any = None) -> float:
        """The most the sleep before the next attempt can last: the server's Retry-After, or the
        back-off with its whole jitter."""
        if response is not None and self.respect_retry_after_header:
            retry_after = self.get_retry_after(response)
            if retry_after is not None:
                return retry_after
        return min(self.backoff_max, self.new(backoff_jitter=0.0).get_backoff_time() + self.backoff_jitter)


def read_retry(attempts: int = 3) -> CappedRetry:
    return CappedRetry(
        total=attempts,
        connect=attempts,
        read=attempts,
        status=attempts,
        other=0,
        backoff_factor=0.25,
        backoff_max=3.0,
        backoff_jitter=0.1,
        status_forcelist=TRANSIENT_STATUSES,
        allowed_methods=frozenset({"GET"}),
        respect_retry_after_header=True,
        raise_on_status=False,
        raise_on_redirect=False,
    )


class SubmitRetry(CappedRetry):
    """urllib3 retries any status in RETRY_AFTER_STATUS_CODES that carries a Retry-After header,
    whatever the forcelist says; for a submit only 429 is surely a refusal before any work."""

    RETRY_AFTER_STATUS_CODES = frozenset({429})


def submit_retry(attempts: int = 2) -> CappedRetry:
    # read=0: a request that was sent but not answered may have started a task.
    return SubmitRetry(
        total=attempts,
        connect=attempts,
        read=0,
        status=attempts,
        other=0,
        backoff_factor=0.5,
        backoff_max=3.0,
        status_forcelist=frozenset({429}),
        allowed_methods=frozenset({"POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )


class CallPlan(NamedTuple):
    timeout: Timeout
    retries: CappedRetry
    ends_at: float  # time.monotonic() by which the whole call must be over
    body_seconds: float  # the longest a body may take to arrive

    def body_seconds_left(self) -> float:
        return max(0.0, min(self.body_seconds, self.ends_at - time.monotonic()))


class NovitaClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | Callable[[], str],
        *,
        http: urllib3.PoolManager | None = None,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        read_attempts: int = 3,
        submit_attempts: int = 2,
        body_seconds: float | None = None,
    ):
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key if callable(api_key) else (lambda: api_key)
        self._http = http or urllib3.PoolManager(maxsize=4)
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._timeout = Timeout(connect=connect_timeout, read=read_timeout)
        self._read_attempts = read_attempts
        self._submit_attempts = submit_attempts
        self._body_seconds = body_seconds

    # --- the two documented endpoints ---------------------------------------------------

    @tracer.capture_method(capture_response=False)
    def start_task(
        self, *, prompt: str, size: str, seed: int, base64_output: bool = False, within: float | None = None
    ) -> str:
        """Start a task; with `within`, the call (retries included) ends within that many seconds."""
        body = {"prompt": prompt, "size": size, "seed": seed, "enable_base64_output": base64_output}
        answer = self._request_json(
            "POST", SUBMIT_PATH, body=body, plan=self.plan_call(submit_retry(self._submit_attempts), within)
        )
        task_id = answer.get("task_id") if isinstance(answer, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise UpstreamUnavailable("the upstream accepted the task but sent no task_id", status=200)
        return task_id

    @tracer.capture_method(capture_response=False)
    def get_task_result(self, task_id: str, *, within: float | None = None) -> TaskResult:
        """The task's state; with `within`, the call (retries included) ends within that many seconds."""
        plan = self.plan_call(read_retry(self._read_attempts), within)
        answer = self._request_json("GET", RESULT_PATH, fields={"task_id": task_id}, plan=plan)
        return parse_task_result(answer)

    @tracer.capture_method(capture_response=False)
    def check_key(self, *, within: float | None = None) -> None:
        """Raise unless the upstream accepts our key, without starting a paid task: ask for a task
        that does not exist, which an accepted key gets a 404 (or another refusal of the request)
        for, and a refused one 401 or 403."""
        try:
            self.get_task_result(KEY_CHECK_TASK_ID, within=within)
        except UpstreamRejected as exc:
            if exc.refuses_key:
                raise

    @tracer.capture_method(capture_response=False)
    def download_image(self, url: str, *, max_bytes: int, within: float | None = None) -> bytes:
        """GET an image from the upstream's storage; no Authorization header goes there. With
        `within`, the download (retries and body included) ends within that many seconds."""
        plan = self.plan_call(read_retry(self._read_attempts), within)
        try:
            response = self._http.request("GET", url, retries=plan.retries, timeout=plan.timeout, preload_content=False)
        except (MaxRetryError, HTTPError) as exc:
            raise _connection_error(exc, "the image download") from exc
        try:
            if response.status != 200:
                kind = UpstreamRejected if response.status in (401, 403, 404, 410) else UpstreamUnavailable
                raise kind(f"the image URL answered HTTP {response.status}", status=response.status)
            return _read_capped(
                response, max_bytes, what="image", too_large=InvalidImage, max_seconds=plan.body_seconds_left()
            )
        finally:
            response.release_conn()

    def plan_call(self, retries: CappedRetry, within: float | None) -> CallPlan:
        """Timeouts and retries for one call; given `within`, the call ends within that many
        seconds: each attempt's connect and read fit in it together (urllib3's `total`), a retry
        is made only while a whole attempt still fits (CappedRetry), and the body must arrive
        before the end."""
        body_seconds = BODY_SECONDS if self._body_seconds is None else self._body_seconds
        if within is None:
            return CallPlan(self._timeout, retries, math.inf, body_seconds)
        within = max(within, 0.001)  # urllib3 refuses a timeout of zero; this one fails at once
        ends_at = time.monotonic() + within
        connect, read = min(self._connect_timeout, within), min(self._read_timeout, within)
        attempt = min(connect + read, within)
        return CallPlan(
            Timeout(connect=connect, read=read, total=within),
            retries.new(ends_at=ends_at, attempt_seconds=attempt),
            ends_at,
            min(body_seconds, within),
        )

    # --- plumbing -----------------------------------------------------------------------

    def _request_json(
        self,
        method: str,
        path: str,
        *,
        plan: CallPlan,
        body: dict | None = None,
        fields: dict | None = None,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._api_key()}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            response = self._http.request(
                method,
                self._base_url + path,
                body=json.dumps(body).encode() if body is not None else None,
                fields=fields,
                headers=headers,
                retries=plan.retries,
                timeout=plan.timeout,
                preload_content=False,
            )
        except (MaxRetryError, HTTPError) as exc:
            raise _connection_error(exc, f"{method} {path}") from exc
        try:
            try:
                raw = _read_capped(response, MAX_JSON_BYTES, what="answer", max_seconds=plan.body_seconds_left())
            except HTTPError as exc:  # the connection broke mid-body
                raise _connection_error(exc, f"{method} {path}") from exc
            if response.status != 200:
                raise error_from_response(response.status, raw, response.headers.get("Retry-After"))
            try:
                return json.loads(raw)
            except ValueError:
                raise UpstreamUnavailable(
                    f"the upstream answered {method} {path} with a body that is not JSON", status=200
                ) from None
        finally:
            response.release_conn()


def _read_capped(
    response: urllib3.BaseHTTPResponse,
    max_bytes: int,
    *,
    what: str,
    too_large: type[Exception] = UpstreamRejected,
    max_seconds: float | None = None,
) -> bytes:
    """Read a body, refusing one over `max_bytes` and one that trickles in for longer than
    `max_seconds` (the read timeout applies per socket read, so it alone bounds nothing)."""
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(f"the upstream {what} is {declared} bytes, over the {max_bytes} byte cap")
    max_seconds = BODY_SECONDS if max_seconds is None else max_seconds
    chunks, total = [], 0
    give_up = time.monotonic() + max_seconds
    # read1 returns whatever one socket read brings, so the clock is checked as bytes arrive;
    # stream() would wait for a whole chunk however slowly it came.
    while chunk := response.read1(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise too_large(f"the upstream {what} is over the {max_bytes} byte cap")
        if time.monotonic() > give_up:
            raise UpstreamTimeout(f"the upstream {what} took over {max_seconds:.0f}s to arrive")
        chunks.append(chunk)
    return b"".join(chunks)


def _connection_error(exc: Exception, what: str) -> UpstreamError:
    cause = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    if isinstance(cause, NewConnectionError | NameResolutionError | ConnectTimeoutError):
        # No connection was made, so the request surely did not reach the upstream.
        return UpstreamUnavailable(f"the upstream could not be reached for {what}: {type(cause).__name__}")
    # A read timeout or a connection lost mid-answer: the request may have been acted on.
    return UpstreamTimeout(f"the upstream did not answer {what}: {type(cause).__name__}")


def error_from_response(status: int, raw: bytes, retry_after: str | None = None) -> UpstreamError:
    """Map Novita's `{"code", "reason", "message"}` error body (or any other body) to an error."""
    reason, message = "", ""
    try:
        parsed = json.loads(raw)
        if isinstance(parsed, dict):
            reason = str(parsed.get("reason") or "")
            message = str(parsed.get("message") or "")
    except ValueError:
        pass
    text = (
        f"the upstream answered HTTP {status}" + (f" {reason}" if reason else "") + (f": {message}" if message else "")
    )
    if status == 429:
        return UpstreamRateLimited(text, retry_after=parse_retry_after(retry_after), reason=reason)
    if status in TRANSIENT_STATUSES and reason != "BILLING_FAILED":
        return UpstreamUnavailable(text, status=status, reason=reason)
    if 400 <= status < 500 or reason == "BILLING_FAILED":
        return UpstreamRejected(text, status=status, reason=reason)
    return UpstreamUnavailable(text, status=status, reason=reason)


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date; rare enough to fall back to our own back-off
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def parse_task_result(body: Any) -> TaskResult:
    """Read a task-result body, tolerating every variant the documentation allows: any
    top-level field may be missing, numbers may arrive as strings, the status may be one we
    do not know (treated as not final)."""
    if not isinstance(body, dict):
        raise UpstreamUnavailable("the upstream's task result is not a JSON object", status=200)
    task = body.get("task") if isinstance(body.get("task"), dict) else {}
    raw_status = task.get("status")
    try:
        status = TaskStatus(raw_status)
    except ValueError:
        status = TaskStatus.UNKNOWN
    images = []
    entries = body.get("images")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("image_url"), str) and entry["image_url"]:
            ttl = to_number(entry.get("image_url_ttl"))
            images.append(
                UpstreamImage(
                    location=entry["image_url"],
                    image_type=str(entry["image_type"]).lower() if entry.get("image_type") else None,
                    url_ttl_seconds=int(ttl) if ttl else None,  # "0" means unspecified
                )
            )
    extra = body.get("extra") if isinstance(body.get("extra"), dict) else {}
    seed = to_number(extra.get("seed"))
    return TaskResult(
        status=status,
        reason=str(task.get("reason") or ""),
        eta_seconds=to_number(task.get("eta")),
        progress_percent=to_number(task.get("progress_percent")),
        images=tuple(images),
        seed=int(seed) if seed is not None and float(seed).is_integer() else None,
    )


def to_number(value: Any) -> float | None:
    """3600, 3600.0 and "3600" read as 3600; "", None, booleans and garbage as None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None
