"""`make demo` (python -m local demo) against the running local stack, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from PIL import Image

from local.__main__ import main as local_command
from local.stack import DEV_API_KEY, free_port
from tests.conftest import ROOT


def test_the_demo_saves_an_image_of_the_requested_size_into_a_new_folder(stack, emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("API_KEY", DEV_API_KEY)

    code = local_command(["demo", "--prompt", "a red fox", "--size", "512*384", "--out", f"{tmp_path}/pics/"])

    saved = list((tmp_path / "pics").iterdir())
    assert code == 0
    assert len(saved) == 1 and saved[0].name.startswith("img_")
    assert Image.open(saved[0]).size == (512, 384)


def test_a_demo_pointed_at_a_deployment_uses_that_deployments_key(stack, emulator, tmp_path, monkeypatch):
    # GIVEN a user who set the CLI's variables for a deployment, and a local key that it refuses
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("ZIMAGE_API_KEY", DEV_API_KEY)
    monkeypatch.setenv("API_KEY", "a-key-the-deployment-refuses")

    # THEN the demo talks to it with its own key
    assert local_command(["demo", "--size", "256*256", "--out", f"{tmp_path}/"]) == 0


def test_a_demo_whose_job_fails_exits_non_zero(stack, emulator, tmp_path, monkeypatch):
    monkeypatch.setenv("ZIMAGE_URL", stack.api_url)
    monkeypatch.setenv("API_KEY", DEV_API_KEY)
    emulator.configure(outcome="fail")

    assert local_command(["demo", "--out", f"{tmp_path}/pics/"]) == 1


def test_the_demo_starts_its_own_stack_and_a_novita_key_alone_keeps_the_emulator(tmp_path):
    """What `make demo` does on a fresh machine, in a process of its own: nothing serves on the
    port, so it starts a stack. A user who exported their Novita key for the deploy steps, but
    no NOVITA_BASE_URL, still gets the emulator, which checks its own key."""
    env = {
        **os.environ,
        "ZIMAGE_URL": f"http://127.0.0.1:{free_port()}",
        "NOVITA_API_KEY": "sk-a-real-looking-key",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("NOVITA_BASE_URL", None)
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "local", "demo", "--size", "256*256", "--out", f"{tmp_path}/"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "starting one in this process" in done.stdout
    assert "timings: accepted" in done.stdout
    assert "picked at random: SEED=" in done.stdout  # no SEED: a random one, said aloud
    assert [Image.open(path).size for path in tmp_path.iterdir()] == [(256, 256)]
