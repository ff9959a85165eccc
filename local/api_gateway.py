"""API Gateway's part on the local stack: an HTTP server that checks `x-api-key` and turns each
request into a REST API proxy event for the real API handler, with the routes of template.yaml.

What API Gateway answers itself comes from the template's `GatewayResponses`, rendered as API
Gateway renders them: a missing or unknown key is INVALID_API_KEY (403 `{"message": "Forbidden"}`),
a route the API does not have is MISSING_AUTHENTICATION_TOKEN (404 `not_found`), a body over
10 MB is REQUEST_TOO_LARGE, a crash of the function is DEFAULT_5XX (502), and anything the HTTP
layer refuses (headers over API Gateway's 10,240 bytes: 431) is DEFAULT_4XX/5XX with its status.
The usage plan (THROTTLED, QUOTA_EXCEEDED) is not metered here.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from local.http_server import BurstTolerantHTTPServer

API_ID = "local"
# API Gateway's quota for the request line and headers together (REST APIs): 10,240 bytes.
MAX_HEADER_BYTES = 10240
# API Gateway's payload quota (REST APIs): 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024
HEADERS_TOO_LARGE = "the request line and headers are over API Gateway's 10240 bytes; send fewer or shorter headers"

# The gateway response types this front raises: API Gateway's default status, the type a
# response falls back to when the template leaves it unspecified, and its x-amzn-ErrorType.
RESPONSE_TYPES: dict[str, tuple[int | None, str | None, str | None]] = {
    "INVALID_API_KEY": (403, "DEFAULT_4XX", "ForbiddenException"),
    "MISSING_AUTHENTICATION_TOKEN": (403, "DEFAULT_4XX", "MissingAuthenticationTokenException"),
    "REQUEST_TOO_LARGE": (413, "DEFAULT_4XX", None),
    "DEFAULT_4XX": (None, None, None),
    "DEFAULT_5XX": (None, None, None),
}


class GatewayResponses:
    """The API's `GatewayResponses` from template.yaml, rendered the way API Gateway does."""

    def __init__(self, template: dict):
        api = next(
            (spec for spec in template["Resources"].values() if spec["Type"] == "AWS::Serverless::Api"),
            {"Properties": {}},
        )
        self.entries: dict[str, dict] = api["Properties"].get("GatewayResponses", {})

    def answer(self, response_type: str, message: str, status: int | None = None) -> tuple[int, dict, bytes]:
        """(status, headers, body) of `response_type`; `status` is the one the failure carries
        (for DEFAULT_4XX/5XX), `message` what API Gateway puts in $context.error.message."""
        default_status, fallback, error_type = RESPONSE_TYPES[response_type]
        entry = self.entries.get(response_type) or (self.entries.get(fallback) if fallback else None)
        status = int((entry or {}).get("StatusCode") or status or default_status)
        headers = {"Content-Type": "application/json"}
        if error_type:
            headers["x-amzn-ErrorType"] = error_type
        if entry is None:  # API Gateway's own body
            return status, headers, json.dumps({"message": message}).encode()
        for name, value in entry.get("ResponseParameters", {}).get("Headers", {}).items():
            headers[name] = value.strip("'")  # static values are quoted; no request mappings are used
        body = entry.get("ResponseTemplates", {}).get("application/json", json.dumps({"message": message}))
        # messageString is the message as a quoted JSON string; message is the bare text.
        body = body.replace("$context.error.messageString", json.dumps(message))
        body = body.replace("$context.error.message", json.dumps(message)[1:-1])
        return status, headers, body.encode()

    def refusal(self, status: int, message: str) -> tuple[int, dict, bytes]:
        """What the HTTP layer refuses before any route is matched (DEFAULT_4XX or DEFAULT_5XX)."""
        return self.answer("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX", message, status)


def routes_from_template(template: dict) -> list[tuple[str, str, re.Pattern, bool]]:
    """(method, resource path, matcher, key required) for every Api event of every function."""
    api_auth = next(
        (
            spec["Properties"].get("Auth", {})
            for spec in template["Resources"].values()
            if spec["Type"] == "AWS::Serverless::Api"
        ),
        {},
    )
    routes = []
    for spec in template["Resources"].values():
        if spec["Type"] != "AWS::Serverless::Function":
            continue
        for event in spec["Properties"].get("Events", {}).values():
            if event["Type"] != "Api":
                continue
            path = event["Properties"]["Path"]
            pattern = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
            key_required = (
                event["Properties"].get("Auth", {}).get("ApiKeyRequired", api_auth.get("ApiKeyRequired", False))
            )
            routes.append((event["Properties"]["Method"].upper(), path, re.compile(f"^{pattern}$"), key_required))
    return routes


class ApiGatewayFront:
    def __init__(
        self,
        template: dict,
        handler: Callable[[dict, Any], dict],
        make_context: Callable[[], Any],
        api_keys: dict[str, str],
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        stage: str = "local",
    ):
        self.routes = routes_from_template(template)
        self.responses = GatewayResponses(template)
        self.handler = handler
        self.make_context = make_context
        self.api_keys = api_keys
        self.stage = stage
        self._server = BurstTolerantHTTPServer((host, port), _request_handler(self))

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ApiGatewayFront:
        threading.Thread(target=self._server.serve_forever, name="api-gateway", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> tuple[int, dict, bytes]:
        if len(raw_path) + sum(len(k) + len(v) for k, v in headers.items()) > MAX_HEADER_BYTES:
            return self.responses.refusal(431, HEADERS_TOO_LARGE)
        if len(body) > MAX_BODY_BYTES:
            return self.responses.answer("REQUEST_TOO_LARGE", "Request Too Large")
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        match = next(
            (
                (resource, found, key_required)
                for verb, resource, pattern, key_required in self.routes
                if verb == method and (found := pattern.match(path))
            ),
            None,
        )
        if match is None:
            return self.responses.answer("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
        resource, found, key_required = match
        api_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        if key_required and api_key not in self.api_keys:
            return self.responses.answer("INVALID_API_KEY", "Forbidden")
        event = self._event(method, path, resource, found.groupdict(), parts.query, headers, body, api_key, source_ip)
        answer = self.handler(event, self.make_context())
        return _http_answer(answer)

    def _event(
        self,
        method: str,
        path: str,
        resource: str,
        path_parameters: dict,
        query: str,
        headers: dict[str, str],
        body: bytes,
        api_key: str,
        source_ip: str,
    ) -> dict:
        multi_query = parse_qs(query, keep_blank_values=True)
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers.items():
            multi_headers.setdefault(name, []).append(value)
        try:
            text, encoded = (body.decode("utf-8") if body else None), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        return {
            "resource": resource,
            "path": path,
            "httpMethod": method,
            "headers": dict(headers),
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": path_parameters or None,
            "stageVariables": None,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": API_ID,
                "resourcePath": resource,
                "httpMethod": method,
                "path": f"/{self.stage}{path}",
                "stage": self.stage,
                "requestId": str(uuid.uuid4()),
                "requestTimeEpoch": int(time.time() * 1000),
                "identity": {
                    "apiKey": api_key if api_key in self.api_keys else None,
                    "apiKeyId": self.api_keys.get(api_key),
                    "sourceIp": source_ip,
                    "userAgent": headers.get("User-Agent", ""),
                },
            },
            "body": text,
            "isBase64Encoded": encoded,
        }


def _http_answer(answer: dict) -> tuple[int, dict, bytes]:
    headers = dict(answer.get("headers") or {})
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers[name] = ", ".join(str(v) for v in values)
    body = answer.get("body") or ""
    payload = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
    return int(answer.get("statusCode", 200)), headers, payload


def _request_handler(front: ApiGatewayFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "local-api-gateway"

        def log_message(self, *args: Any) -> None:
            pass

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            """http.server's own refusals (a header line over 64 KiB, over 100 headers, a
            malformed request line) in API Gateway's shape instead of an HTML page."""
            self.close_connection = True
            text = HEADERS_TOO_LARGE if code == 431 else (message or self.responses.get(code, ("",))[0])
            self._send(*front.responses.refusal(code, text), close=True)

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                answer = front.handle(self.command, self.path, dict(self.headers.items()), body, self.client_address[0])
            except Exception:  # what API Gateway says when the integration itself breaks
                logging.getLogger("local.api_gateway").exception("the API function crashed")
                answer = front.responses.refusal(502, "Internal server error")
            self._send(*answer)

        def _send(self, status: int, headers: dict, payload: bytes, close: bool = False) -> None:
            self.send_response(status)
            if close:
                self.send_header("Connection", "close")
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    return Handler
