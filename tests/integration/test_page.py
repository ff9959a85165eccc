"""GET / serves the page without a key, with a policy that allows only what it ships: its own
inlined script and style (by hash), images from the bucket's host, requests to this API."""

from __future__ import annotations

import base64
import hashlib
import re

import urllib3

from .conftest import ApiClient


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_the_page_needs_no_key_and_allows_only_what_it_ships(stack, emulator):
    answer = ApiClient(stack.api_url, api_key=None).request("GET", "/")

    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/html; charset=utf-8"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    policy = directives(answer.headers["Content-Security-Policy"])
    page = answer.data.decode()
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    (style,) = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert policy == {
        "default-src": "'none'",
        "script-src": sha256(script),
        "style-src": sha256(style),
        "img-src": stack.endpoint,  # where the local stack's presigned URLs point
        "connect-src": "'self'",
        "base-uri": "'none'",
        "form-action": "'none'",
        "frame-ancestors": "'none'",
    }
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<[^>]+\s(on[a-z]+|style)=", markup)  # no inline handler or style attribute


def test_the_page_uses_relative_urls_only(stack, emulator):
    page = urllib3.request("GET", stack.api_url + "/").data.decode()

    assert not re.search(r"""(src|href)=["'](https?:)?//""", page)
    assert "fetch(base + path" in page and "`${base}v1/openapi.json`" in page


def test_the_page_says_the_upstream_is_the_emulator(stack, emulator):
    page = urllib3.request("GET", stack.api_url + "/").data.decode()

    assert '<p class="notice" role="note">Local stack: the pictures come from the Novita emulator' in page


def test_the_api_still_needs_its_key_beside_the_open_page(stack, emulator):
    assert ApiClient(stack.api_url, api_key=None).request("GET", "/v1/images").status == 403
    assert ApiClient(stack.api_url, api_key=None).request("POST", "/").status == 404
