"""GET /: the page to try the API in a browser, served without an API key (template: the Page
event). Its HTML, style and script live in page/ and ship with this function; the style and
script are inlined and allowed by their hashes, so the Content-Security-Policy allows nothing
else: no other script, style, font or frame, images only from the bucket's host (the presigned
URLs), requests only to this API."""

from __future__ import annotations

import base64
import hashlib
import html
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from zimage.runtime import shared_runtime

PAGE_FILES = Path(__file__).parent / "page"

router = APIGatewayRouter()


@router.get("/", include_in_schema=False)
def get_page() -> Response[str]:
    body, policy = page()
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=body,
        headers={
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
            "Cache-Control": "no-store",
        },
    )


@cache
def page() -> tuple[str, str]:
    """(the page, its Content-Security-Policy), made on the first GET / of this container."""
    runtime = shared_runtime()
    style = (PAGE_FILES / "page.css").read_text()
    script = (PAGE_FILES / "page.js").read_text()
    notice = runtime.settings.upstream_notice
    body = (
        (PAGE_FILES / "index.html")
        .read_text()
        .replace("{{notice}}", f'<p class="notice" role="note">{html.escape(notice)}</p>' if notice else "")
        .replace("{{style}}", style)
        .replace("{{script}}", script)
    )
    return body, content_security_policy(script, style, image_origin(runtime.images.presign("images/page", 60)[0]))


def content_security_policy(script: str, style: str, image_origin: str) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src '{_sha256(script)}'",
            f"style-src '{_sha256(style)}'",
            f"img-src {image_origin}",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


def image_origin(presigned_url: str) -> str:
    """The origin the bucket's presigned URLs point at: the bucket's regional host on AWS, the
    S3 endpoint on the local stack. Signing needs no call to S3."""
    parts = urlsplit(presigned_url)
    return f"{parts.scheme}://{parts.netloc}"


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
