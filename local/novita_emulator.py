"""A Novita emulator: a real HTTP server on loopback that speaks the async Z-Image-Turbo API as
documented (../shared/novita-contract.md) and draws real images of the requested size.

Tasks go queued -> processing -> succeeded over a configurable time, reporting eta and progress.
Knobs make it misbehave on purpose: failed tasks, tasks that never end, 429/5xx answers, slow or
dropped connections, garbled JSON and broken images, or no server at all (`refuse_connections`).
Settings apply to tasks created after the change; scripted faults are consumed one per request,
in order.

Control it in-process (`emulator.configure(...)`, `emulator.script(...)`) or over HTTP:
`POST /_emulator/settings`, `POST /_emulator/faults`, `POST /_emulator/reset`, `GET /_emulator/stats`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
import random
import re
import secrets
import socket
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw

from local.http_server import BurstTolerantHTTPServer

SUBMIT = "submit"
RESULT = "result"
IMAGE = "image"
_SIZE = re.compile(r"^(\d+)\*(\d+)$")
_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}


@dataclass(frozen=True)
class EmulatorSettings:
    api_key: str = "local-novita-key"
    queue_seconds: float = 0.2
    run_seconds: float = 1.0
    run_seconds_range: tuple[float, float] | None = None  # each task draws its time from this
    # This share of the tasks draws from outlier_range instead of run_seconds_range (a queue, a
    # cold worker).
    outlier_share: float = 0.0
    outlier_range: tuple[float, float] | None = None
    report_eta: bool = True
    report_progress: bool = True
    # truthful: eta and progress as they are; none: both stay 0, as Novita sends for many
    # models; misleading: each task claims a time a quarter or three times its real one.
    eta_style: str = "truthful"
    eta_override: float | None = None  # a fixed eta, whatever the real remaining time
    outcome: str = "succeed"  # succeed | fail | never | unknown_status
    fail_reason: str = "the model could not render this prompt"
    image_type: str = "jpeg"  # jpeg | png | webp
    # shapes: a gradient and discs; noise: random pixels, which no format compresses, so the
    # largest image a task of its size can send.
    image_content: str = "shapes"
    image_variant: str = "ok"  # ok | not_image | truncated | wrong_size | empty | bad_base64 | oversized
    image_status: int = 200  # HTTP status the image URL answers with
    ttl_style: str = "int"  # int (3600) | string ("3600") | zero ("0")
    include_debug_info: bool = True
    # Every Nth task submit is refused with 429 RATE_LIMIT_EXCEEDED (0: never), as Novita's
    # per-minute limit refuses part of a burst; Novita documents no Retry-After, so none by default.
    rate_limit_every: int = 0
    rate_limit_retry_after: int | None = None

    @property
    def typical_seconds(self) -> float:
        """How long a task usually takes, queue included: the middle of the range it draws from."""
        run = sum(self.run_seconds_range) / 2 if self.run_seconds_range else self.run_seconds
        return round(self.queue_seconds + run, 2)


@dataclass
class Task:
    task_id: str
    prompt: str
    width: int
    height: int
    seed: int
    base64_output: bool
    created: float
    settings: EmulatorSettings
    run_seconds: float = 0.0
    created_wall: float = 0.0  # time.time() at creation, for measuring from outside
    polls: int = 0  # task-result calls that asked about it
    _image: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Fault:
    """One scripted answer. `status` with `body` (JSON) or `raw` (bytes as they are);
    `delay` seconds before answering; `drop` closes the connection without an answer;
    `slow_body` sends the body a byte at a time over that many seconds; `truncate` announces the
    whole body but sends only its first bytes before closing (a reset mid-body)."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    slow_body: float = 0.0
    truncate: int | None = None  # send this many bytes of the body, then close the connection
    passthrough: bool = False  # answer normally, after `delay`

    @classmethod
    def from_dict(cls, data: dict) -> Fault:
        data = dict(data)
        if isinstance(data.get("raw"), str):
            data["raw"] = data["raw"].encode()
        return cls(**data)


def error_body(code: int, reason: str, message: str) -> dict:
    return {"code": code, "reason": reason, "message": message, "metadata": {}}


class NovitaEmulator:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, settings: EmulatorSettings | None = None):
        self._initial = settings or EmulatorSettings()
        self.settings = self._initial
        self.tasks: dict[str, Task] = {}
        self.calls: Counter[str] = Counter()
        self._faults: dict[str, deque[Fault]] = {SUBMIT: deque(), RESULT: deque(), IMAGE: deque()}
        self.rate_limited = 0  # submits refused by rate_limit_every since the last reset
        self._lock = threading.Lock()
        self._server = _EmulatorServer((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None
        self._serving = False

    # --- life cycle ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> NovitaEmulator:
        self._serving = True
        # A short poll interval: refuse_connections() waits for the serving loop to notice.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="novita-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._serving:
            self._server.shutdown()
            self._serving = False
        self._server.server_close()
        self._server.close_open_connections()

    def refuse_connections(self) -> None:
        """Go down like a crashed upstream: stop listening and close every open connection, so
        that each new connection is refused by the kernel (ECONNREFUSED) and no pooled
        keep-alive connection is reused, until `accept_connections()`. The port stays ours."""
        if not self._serving:
            return
        self._server.shutdown()
        self._serving = False
        self._server.socket.close()
        self._server.close_open_connections()

    def accept_connections(self) -> None:
        """Listen again on the same address (the base URL does not change)."""
        if self._serving:
            return
        self._server.socket = socket.socket(self._server.address_family, self._server.socket_type)
        self._server.server_bind()
        self._server.server_activate()
        self.start()

    # --- knobs ---------------------------------------------------------------------------

    def configure(self, **changes: Any) -> EmulatorSettings:
        known = {f.name for f in fields(EmulatorSettings)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown emulator settings: {sorted(unknown)}; known: {sorted(known)}")
        with self._lock:
            self.settings = replace(self.settings, **changes)
            return self.settings

    def script(self, endpoint: str, *faults: Fault | dict) -> None:
        if endpoint not in self._faults:
            raise ValueError(f"endpoint must be one of {sorted(self._faults)}")
        with self._lock:
            self._faults[endpoint].extend(f if isinstance(f, Fault) else Fault.from_dict(f) for f in faults)

    def reset(self) -> None:
        with self._lock:
            self.settings = self._initial
            self.calls.clear()
            self.rate_limited = 0
            for queue in self._faults.values():
                queue.clear()

    def stats(self) -> dict:
        with self._lock:
            return {
                "calls": dict(self.calls),
                "tasks": len(self.tasks),
                "rate_limited": self.rate_limited,
                "settings": asdict(self.settings),
            }

    def next_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            self.calls[endpoint] += 1
            queue = self._faults[endpoint]
            if queue:
                return queue.popleft()
            every = self.settings.rate_limit_every
            if endpoint == SUBMIT and every and self.calls[SUBMIT] % every == 0:
                self.rate_limited += 1
                return Fault(
                    status=429,
                    body=error_body(429, "RATE_LIMIT_EXCEEDED", "too many requests"),
                    headers={"Retry-After": str(self.settings.rate_limit_retry_after)}
                    if self.settings.rate_limit_retry_after is not None
                    else {},
                )
            return None

    # --- the API -------------------------------------------------------------------------

    def create_task(self, body: Any) -> tuple[int, dict]:
        if not isinstance(body, dict):
            return 400, error_body(400, "INVALID_REQUEST_BODY", "request body must be a JSON object")
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return 400, error_body(400, "INVALID_REQUEST_BODY", "prompt is required")
        match = _SIZE.match(str(body.get("size", "1024*1024")))
        width, height = (int(match[1]), int(match[2])) if match else (0, 0)
        if not (256 <= width <= 1536 and 256 <= height <= 1536):
            return 400, error_body(400, "INVALID_IMAGE_SIZE", "size must be W*H with each side 256..1536")
        seed = body.get("seed", -1)
        if isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed <= 2_147_483_647:
            return 400, error_body(400, "INVALID_REQUEST_BODY", "seed must be an integer in -1..2147483647")
        if seed == -1:
            seed = random.randint(0, 2_147_483_647)
        task = Task(
            task_id=secrets.token_hex(16),
            prompt=prompt,
            width=width,
            height=height,
            seed=seed,
            base64_output=bool(body.get("enable_base64_output", False)),
            created=time.monotonic(),
            settings=self.settings,
            # Drawn from the prompt and seed, like the image: the same request takes the same
            # time, so runs (and the bench's two policies) are compared on the same tasks.
            run_seconds=_draw_run_seconds(self.settings, random.Random(f"{seed}:{prompt}")),
            created_wall=time.time(),
        )
        with self._lock:
            self.tasks[task.task_id] = task
        return 200, {"task_id": task.task_id}

    def task_result(self, task_id: str, image_base_url: str) -> tuple[int, dict]:
        task = self.tasks.get(task_id)
        if task is None:
            return 404, error_body(404, "TASK_NOT_FOUND", "task not found")
        s = task.settings
        task.polls += 1
        elapsed = time.monotonic() - task.created
        total = s.queue_seconds + task.run_seconds
        ended = elapsed >= total and s.outcome != "never"
        if not ended:
            status = "TASK_STATUS_QUEUED" if elapsed < s.queue_seconds else "TASK_STATUS_PROCESSING"
            claimed = total
            if s.eta_style == "misleading":
                claimed = s.queue_seconds + task.run_seconds * _claimed_factor(task)
            remaining = max(0.0, claimed - elapsed)
            eta = s.eta_override if s.eta_override is not None else (math.ceil(remaining) if s.report_eta else 0)
            progress = min(99, int(100 * elapsed / claimed)) if s.report_progress and claimed else 0
            if s.eta_style == "misleading":
                eta = max(1, eta)  # a task past its claim still claims a second more
            elif s.eta_style == "none":
                eta, progress = 0, 0
        else:
            status = {"fail": "TASK_STATUS_FAILED", "unknown_status": "TASK_STATUS_UNKNOWN"}.get(
                s.outcome, "TASK_STATUS_SUCCEED"
            )
            eta, progress = 0, (100 if status == "TASK_STATUS_SUCCEED" else 0)
        answer: dict[str, Any] = {
            "extra": {"seed": str(task.seed), "enable_nsfw_detection": False},
            "task": {
                "task_id": task.task_id,
                "status": status,
                "reason": s.fail_reason if status == "TASK_STATUS_FAILED" else "",
                "task_type": "TXT_TO_IMG",
                "eta": eta,
                "progress_percent": progress,
            },
            "images": [],
            "videos": [],
            "audios": [],
        }
        if s.include_debug_info:
            submit_ms = str(int(time.time() * 1000 - elapsed * 1000))
            answer["extra"]["debug_info"] = {
                "request_info": "",
                "submit_time_ms": submit_ms,
                "execute_time_ms": submit_ms,
                "complete_time_ms": str(int(time.time() * 1000)) if ended else "0",
            }
        if status == "TASK_STATUS_SUCCEED":
            ttl = {"int": 3600, "string": "3600", "zero": "0"}[s.ttl_style]
            if task.base64_output:
                location = (
                    "%%%not-base64%%%"
                    if s.image_variant == "bad_base64"
                    else base64.b64encode(self.image_bytes(task)).decode()
                )
            else:
                location = f"{image_base_url}/images/{task.task_id}.{s.image_type}?X-Amz-Expires=3600"
            # The documentation shows `nsfw_detection_result: {}`, but Novita's Python SDK requires
            # `valid` and `confidence` there; sending them keeps both readers working.
            nsfw = {"valid": True, "confidence": 0.0}
            answer["images"] = [
                {"image_url": location, "image_url_ttl": ttl, "image_type": s.image_type, "nsfw_detection_result": nsfw}
            ]
        return 200, answer

    def finished_at(self, task_id: str) -> float:
        """When the task turned final (time.time()), had anyone asked at that moment."""
        task = self.tasks[task_id]
        return task.created_wall + task.settings.queue_seconds + task.run_seconds

    def image_bytes(self, task: Task) -> bytes:
        if task._image is None:
            task._image = _broken(task.settings.image_variant, render_image(task))
        return task._image


def _draw_run_seconds(settings: EmulatorSettings, draw: random.Random) -> float:
    """A task's time, drawn from its prompt and seed so that the same request takes the same time;
    with no range to draw from, run_seconds for every task."""
    if not settings.run_seconds_range:
        return settings.run_seconds
    if settings.outlier_range and draw.random() < settings.outlier_share:
        return draw.uniform(*settings.outlier_range)
    return draw.uniform(*settings.run_seconds_range)


def _claimed_factor(task: Task) -> float:
    """How far a misleading eta is off for this task: half of them claim a quarter of their time,
    the other half three times it."""
    return random.Random(f"eta:{task.seed}:{task.prompt}").choice((0.25, 3.0))


def render_image(task: Task) -> bytes:
    """A real picture, the same for the same prompt, seed and size."""
    s = task.settings
    digest = hashlib.sha256(f"{task.seed}:{task.prompt}".encode()).digest()
    width, height = (task.width, task.height)
    if s.image_variant == "wrong_size":
        width, height = width // 2, height // 2
    if s.image_content == "noise":
        noise = random.Random(digest).randbytes(width * height * 3)
        out = io.BytesIO()
        Image.frombytes("RGB", (width, height), noise).save(out, _PIL_FORMATS.get(s.image_type, "JPEG"), quality=100)
        return out.getvalue()
    top, bottom = digest[0:3], digest[3:6]
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):  # a vertical gradient between two colours of the seed
        t = y / max(1, height - 1)
        draw.line([(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True)))
    rng = random.Random(digest)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(min(width, height) // 16, min(width, height) // 4)
        draw.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, _PIL_FORMATS.get(s.image_type, "JPEG"), quality=85)
    return out.getvalue()


def _broken(variant: str, data: bytes) -> bytes:
    if variant == "not_image":
        return b"<html><body>Access denied</body></html>"
    if variant == "truncated":
        return data[: len(data) // 2]
    if variant == "empty":
        return b""
    if variant == "oversized":  # a valid JPEG, padded after its end to 2 MiB and more
        return data + b"\x00" * (2 * 1024 * 1024)
    return data


class _EmulatorServer(BurstTolerantHTTPServer):
    """Knows its open connections, so that going down can close them as a real outage does."""

    def __init__(self, *args: Any, **kwargs: Any):
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_open_connections(self) -> None:
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for connection in open_now:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if self.socket.fileno() == -1:  # a request cut short by refuse_connections(): expected
            return
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return  # the client gave up first (its read timeout, as Novita's clients do): expected
        super().handle_error(request, client_address)


def _handler_for(emulator: NovitaEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "novita-emulator"

        def log_message(self, *args: Any) -> None:  # quiet; the stats endpoint counts calls
            pass

        def do_POST(self) -> None:
            path = urlsplit(self.path).path
            body = self._read_json()
            if path.startswith("/_emulator/"):
                return self._control(path, body)
            if path != "/v3/async/z-image-turbo":
                return self._send(404, error_body(404, "API_NOT_FOUND", "api not found"))
            fault = emulator.next_fault(SUBMIT)
            if self._apply(fault) or not self._authorized():
                return
            status, answer = (
                emulator.create_task(body)
                if body is not _INVALID
                else (400, error_body(400, "INVALID_REQUEST_BODY", "invalid json"))
            )
            self._send(status, answer)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/_emulator/stats":
                return self._send(200, emulator.stats())
            if parts.path == "/v3/async/task-result":
                fault = emulator.next_fault(RESULT)
                if self._apply(fault) or not self._authorized():
                    return
                task_id = parse_qs(parts.query).get("task_id", [""])[0]
                host = self.headers.get("Host") or "127.0.0.1"
                status, answer = emulator.task_result(task_id, f"http://{host}")
                return self._send(status, answer)
            if parts.path.startswith("/images/"):
                fault = emulator.next_fault(IMAGE)
                if self._apply(fault):
                    return
                task = emulator.tasks.get(parts.path.rsplit("/", 1)[-1].split(".")[0])
                if task is None:
                    return self._send_raw(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
                if task.settings.image_status != 200:
                    return self._send_raw(task.settings.image_status, b"<Error>denied</Error>", "application/xml")
                ctype = f"image/{task.settings.image_type}"
                return self._send_raw(200, emulator.image_bytes(task), ctype)
            self._send(404, error_body(404, "API_NOT_FOUND", "api not found"))

        # --- helpers ---------------------------------------------------------------------

        def _authorized(self) -> bool:
            expected = emulator.settings.api_key
            given = self.headers.get("Authorization", "")
            if not given:
                self._send(400, error_body(400, "MISSING_API_KEY", "missing api key"))
                return False
            if expected and given != f"Bearer {expected}":
                self._send(403, {"code": 403, "reason": "INVALID_API_KEY", "message": "invalid api-key"})
                return False
            return True

        def _apply(self, fault: Fault | None) -> bool:
            """Play a scripted fault; True when it answered (or dropped) the request."""
            if fault is None:
                return False
            if fault.delay:
                time.sleep(fault.delay)
            if fault.passthrough:
                return False
            if fault.drop:
                self.close_connection = True
                self.connection.shutdown(2)  # the client sees a reset / closed connection
                return True
            payload = fault.raw if fault.raw is not None else json.dumps(fault.body or {}).encode()
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in fault.headers.items():
                self.send_header(name, str(value))
            self.end_headers()
            if fault.truncate is not None:
                self.wfile.write(payload[: fault.truncate])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
            elif fault.slow_body and payload:
                step = fault.slow_body / len(payload)
                for i in range(len(payload)):
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                    time.sleep(step)
            else:
                self.wfile.write(payload)
            return True

        def _control(self, path: str, body: Any) -> None:
            try:
                if path == "/_emulator/settings":
                    return self._send(200, asdict(emulator.configure(**(body or {}))))
                if path == "/_emulator/faults":
                    emulator.script(body["endpoint"], *body.get("responses", []))
                    return self._send(200, {"queued": len(body.get("responses", []))})
                if path == "/_emulator/reset":
                    emulator.reset()
                    return self._send(200, {"reset": True})
            except (ValueError, KeyError, TypeError) as exc:
                return self._send(400, {"error": str(exc)})
            self._send(404, {"error": "unknown control path"})

        def _read_json(self) -> Any:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return _INVALID

        def _send(self, status: int, body: Any) -> None:
            self._send_raw(status, json.dumps(body).encode(), "application/json")

        def _send_raw(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


_INVALID = object()
