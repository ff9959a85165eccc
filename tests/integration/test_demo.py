"""`make demo` (python -m local demo) against the running local stack, as a user runs it."""

from __future__ import annotations

from PIL import Image

from local.__main__ import main as local_command
from local.stack import DEV_API_KEY


def test_the_demo_saves_an_image_of_the_requested_size_into_a_new_folder(stack, emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("API_KEY", DEV_API_KEY)

    code = local_command(["demo", "--prompt", "a red fox", "--size", "512*384", "--out", f"{tmp_path}/pics/"])

    saved = list((tmp_path / "pics").iterdir())
    assert code == 0
    assert len(saved) == 1 and saved[0].name.startswith("img_")
    assert Image.open(saved[0]).size == (512, 384)


def test_a_demo_whose_job_fails_exits_non_zero(stack, emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("API_KEY", DEV_API_KEY)
    emulator.configure(outcome="fail")

    assert local_command(["demo", "--out", f"{tmp_path}/pics/"]) == 1
