"""Checks that the bytes the upstream sent are a whole JPEG, PNG or WebP of the asked size."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
from typing import NamedTuple

import imagesize

from zimage.upstream.errors import InvalidImage

CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
_DATA_URI = re.compile(r"^data:image/[a-z+.-]+;base64,", re.IGNORECASE)


class ImageFacts(NamedTuple):
    format: str  # jpeg | png | webp
    width: int
    height: int
    bytes: int
    sha256: str

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]


def decode_base64_image(data: str) -> bytes:
    """Decode base64 output, with or without a `data:image/...;base64,` prefix."""
    text = _DATA_URI.sub("", data.strip(), count=1)
    text = "".join(text.split())  # line breaks are legal in MIME base64
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage("the upstream sent image data that is neither a URL nor valid base64") from None


def detect_format(data: bytes) -> str | None:
    # Magic numbers from each format's specification; imghdr, which did this, left Python in 3.13.
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def is_complete(image_format: str, data: bytes) -> bool:
    """A cheap truncation check no small library offers: each format ends in a known way
    (JPEG with the EOI marker, PNG with the IEND chunk, WebP's RIFF size equals the length)."""
    if image_format == "jpeg":
        return data.rstrip(b"\x00").endswith(b"\xff\xd9")
    if image_format == "png":
        return data.endswith(b"IEND\xaeB`\x82")
    if image_format == "webp":
        return int.from_bytes(data[4:8], "little") + 8 == len(data)
    return False


def inspect_image(data: bytes, *, expected_size: tuple[int, int], max_bytes: int) -> ImageFacts:
    """Return the image's facts, or raise InvalidImage saying what is wrong with it."""
    if not data:
        raise InvalidImage("the upstream sent an empty image")
    if len(data) > max_bytes:
        raise InvalidImage(f"the upstream image is {len(data)} bytes, over the {max_bytes} byte cap")
    image_format = detect_format(data)
    if image_format is None:
        raise InvalidImage("the upstream sent bytes that are not a JPEG, PNG or WebP image")
    if not is_complete(image_format, data):
        raise InvalidImage(f"the upstream {image_format.upper()} image is truncated")
    info = imagesize.get_info(io.BytesIO(data), dpi=False, colors=False, channels=False, exif_rotation=False)
    if info.width <= 0 or info.height <= 0:
        raise InvalidImage(f"the upstream {image_format.upper()} image has no readable dimensions")
    if (info.width, info.height) != expected_size:
        raise InvalidImage(
            f"the upstream image is {info.width}*{info.height}, not the requested {expected_size[0]}*{expected_size[1]}"
        )
    return ImageFacts(
        format=image_format,
        width=info.width,
        height=info.height,
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
