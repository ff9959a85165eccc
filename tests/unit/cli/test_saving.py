"""Where `zimage generate` saves an image (zimage_cli.__main__.save_path)."""

from __future__ import annotations

from pathlib import Path

import pytest
from zimage_cli.__main__ import save_path

JOB = "img_01JD0000000000000000000000"


@pytest.mark.parametrize(
    ("output", "content_type", "saved"),
    [
        ("fox.png", "image/jpeg", "fox.jpg"),  # the upstream sent a JPEG: the name says so
        ("fox.JPG", "image/png", "fox.png"),
        ("fox.jpeg", "image/jpeg", "fox.jpeg"),  # either JPEG suffix is the image's own
        ("fox.webp", "image/webp", "fox.webp"),
        ("fox", "image/png", "fox"),  # no suffix, or one that names no image format: as given
        ("fox.bin", "image/jpeg", "fox.bin"),
        ("/dev/null", "image/jpeg", "/dev/null"),
        (None, "image/png", f"out/{JOB}.png"),
        ("shots/", "image/webp", f"shots/{JOB}.webp"),
    ],
)
def test_the_file_is_named_for_the_format_the_image_has(output, content_type, saved):
    assert save_path(output, JOB, content_type) == Path(saved)


def test_an_existing_folder_gets_the_jobs_own_name(tmp_path):
    assert save_path(str(tmp_path), JOB, "image/jpeg") == tmp_path / f"{JOB}.jpg"
