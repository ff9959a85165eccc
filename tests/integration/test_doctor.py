"""`zimage doctor` against the local stack: every check passes on a sound deployment, and each
fault stops the checks where it is found, saying what is wrong and what to do."""

from __future__ import annotations

import json

import pytest
from zimage_cli.__main__ import main as zimage

from local.stack import DEV_API_KEY, free_port

from .test_misconfiguration import key_parameter_deleted  # noqa: F401  (a fixture)


def doctor(capsys, url: str, *words: str, api_key: str = DEV_API_KEY) -> tuple[int, dict]:
    code = zimage(["doctor", *words, "--json", "--url", url, "--api-key", api_key])
    return code, json.loads(capsys.readouterr().out)


def outcomes(found: dict) -> dict[str, str]:
    return {check["name"]: check["outcome"] for check in found["checks"]}


def test_a_sound_deployment_passes_every_check_with_one_image(stack, emulator, capsys):
    code, found = doctor(capsys, stack.api_url, "--yes")

    assert code == 0, found
    assert outcomes(found) == {"reachable": "ok", "API key": "ok", "Novita key": "ok", "one image": "ok"}
    assert "256x256 image/jpeg" in found["checks"][-1]["found"]
    assert emulator.calls["submit"] == 1


def test_no_generate_pays_for_nothing(stack, emulator, capsys):
    code, found = doctor(capsys, stack.api_url, "--no-generate")

    assert code == 0
    assert outcomes(found)["one image"] == "skipped"
    assert emulator.calls["submit"] == 0


def test_without_a_terminal_or_yes_no_image_is_made(stack, emulator, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)

    code, found = doctor(capsys, stack.api_url)

    assert code == 0
    assert found["checks"][-1]["found"].startswith("not asked: pass --yes")
    assert emulator.calls["submit"] == 0


def test_a_wrong_api_key_stops_at_the_key_and_says_where_to_get_one(stack, emulator, capsys):
    code, found = doctor(capsys, stack.api_url, "--yes", api_key="not-a-key")

    assert code == 1
    assert outcomes(found) == {"reachable": "ok", "API key": "failed"}
    assert "get-api-key" in found["checks"][-1]["fix"]
    assert emulator.calls["result"] == emulator.calls["submit"] == 0


def test_an_address_nothing_listens_on_is_unreachable(capsys):
    code, found = doctor(capsys, f"http://127.0.0.1:{free_port()}", "--no-generate")

    assert code == 1
    assert outcomes(found) == {"reachable": "failed"}
    assert "ZIMAGE_URL" in found["checks"][0]["fix"]


def test_a_key_novita_refuses_is_found_without_paying(stack, emulator, capsys):
    emulator.configure(api_key="a-key-the-deployment-does-not-have")

    code, found = doctor(capsys, stack.api_url, "--yes")

    assert code == 1
    assert outcomes(found) == {"reachable": "ok", "API key": "ok", "Novita key": "failed"}
    assert "upstream_key_refused" in found["checks"][-1]["found"]
    assert "key-management" in found["checks"][-1]["fix"]
    assert emulator.calls["submit"] == 0


@pytest.mark.usefixtures("key_parameter_deleted")
def test_an_unreadable_key_says_where_the_key_belongs(stack, emulator, capsys):
    code, found = doctor(capsys, stack.api_url, "--no-generate")

    assert code == 1
    check = found["checks"][-1]
    assert "upstream_key_unavailable" in check["found"] and "ParameterNotFound" in check["found"]
    assert "SecureString" in check["fix"]


def test_the_report_reads_as_lines_with_what_to_do(stack, emulator, capsys):
    emulator.configure(api_key="a-key-the-deployment-does-not-have")

    code = zimage(["doctor", "--no-generate", "--url", stack.api_url, "--api-key", DEV_API_KEY])
    out = capsys.readouterr().out

    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("ok      reachable")
    assert lines[2].startswith("failed  Novita key  HTTP 503 upstream_key_refused")
    assert lines[3].startswith("        what to do")
