"""API Gateway's part on the local stack: an HTTP server that checks `x-api-key` and turns each
request into a REST API proxy event for the real API handler, with the routes of template.yaml.

It answers what API Gateway answers itself: 403 `{"message": "Forbidden"}` for a missing or
unknown key, 403 `{"message": "Missing Authentication Token"}` for a route the API does not have.
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
            return 431, {"Content-Type": "application/json"}, b'{"message": "Request Header Fields Too Large"}'
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
            return _gateway_answer(403, "Missing Authentication Token")
        resource, found, key_required = match
        api_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        if key_required and api_key not in self.api_keys:
            return _gateway_answer(403, "Forbidden")
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


def _gateway_answer(status: int, message: str) -> tuple[int, dict, bytes]:
    return (
        status,
        {"Content-Type": "application/json", "x-amzn-ErrorType": "ForbiddenException"},
        json.dumps({"message": message}).encode(),
    )


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

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                status, headers, payload = front.handle(
                    self.command, self.path, dict(self.headers.items()), body, self.client_address[0]
                )
            except Exception:  # what API Gateway says when the integration itself breaks
                logging.getLogger("local.api_gateway").exception("the API function crashed")
                status, headers, payload = (
                    502,
                    {"Content-Type": "application/json"},
                    b'{"message": "Internal server error"}',
                )
            self.send_response(status)
            for name, value in headers.items():
                if name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    return Handler
