from __future__ import annotations

import base64
import hashlib

import pytest

from zimage.images.checks import decode_base64_image, inspect_image
from zimage.upstream.errors import InvalidImage
from zimage.upstream.novita import UpstreamImage

from ..conftest import picture

CAP = 5_000_000


@pytest.mark.parametrize(
    ("pil", "name", "content_type"),
    [("JPEG", "jpeg", "image/jpeg"), ("PNG", "png", "image/png"), ("WEBP", "webp", "image/webp")],
)
def test_each_format_is_recognised_with_its_size(pil, name, content_type):
    data = picture(300, 200, pil)

    facts = inspect_image(data, expected_size=(300, 200), max_bytes=CAP)

    assert (facts.format, facts.content_type, facts.width, facts.height) == (name, content_type, 300, 200)
    assert facts.bytes == len(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("pil", ["JPEG", "PNG", "WEBP"])
def test_a_truncated_image_is_refused(pil):
    data = picture(300, 200, pil)

    with pytest.raises(InvalidImage, match="truncated"):
        inspect_image(data[: len(data) - 10], expected_size=(300, 200), max_bytes=CAP)


def test_the_wrong_size_is_refused_with_both_sizes():
    with pytest.raises(InvalidImage, match=r"300\*200, not the requested 512\*512"):
        inspect_image(picture(300, 200), expected_size=(512, 512), max_bytes=CAP)


@pytest.mark.parametrize("data", [b"", b"<html>denied</html>", b"GIF89a" + b"\x00" * 100, b"\xff\xd8"])
def test_bytes_that_are_not_a_supported_image_are_refused(data):
    with pytest.raises(InvalidImage):
        inspect_image(data, expected_size=(1, 1), max_bytes=CAP)


def test_an_image_over_the_cap_is_refused():
    data = picture(300, 200)

    with pytest.raises(InvalidImage, match="byte cap"):
        inspect_image(data, expected_size=(300, 200), max_bytes=len(data) - 1)


def test_base64_with_or_without_a_data_uri_and_line_breaks_decodes():
    data = picture(64, 64, "PNG")
    text = base64.b64encode(data).decode()

    assert decode_base64_image(text) == data
    assert decode_base64_image("data:image/png;base64," + text) == data
    assert decode_base64_image("\n".join(text[i : i + 76] for i in range(0, len(text), 76))) == data
    assert decode_base64_image(text.rstrip("=")) == data


@pytest.mark.parametrize("text", ["%%%not-base64%%%", "abc$", "data:image/png;base64,***"])
def test_invalid_base64_is_an_invalid_image(text):
    with pytest.raises(InvalidImage, match="neither a URL nor valid base64"):
        decode_base64_image(text)


@pytest.mark.parametrize(
    ("location", "url"),
    [("https://x/y.jpg", True), ("http://127.0.0.1/y", True), ("/9j/4AAQ", False), ("iVBORw0", False)],
)
def test_urls_are_told_from_data(location, url):
    assert UpstreamImage(location).is_url is url
