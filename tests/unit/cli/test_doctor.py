"""`zimage doctor` asks before it spends: the paid image is made only with consent."""

from __future__ import annotations

import pytest
from zimage_cli.doctor import Check, as_json, consent


@pytest.mark.parametrize(("reply", "allowed"), [("y", True), ("YES", True), ("", "declined"), ("n", "declined")])
def test_a_person_at_a_terminal_is_asked(monkeypatch, reply, allowed):
    monkeypatch.setattr("sys.stdin.isatty", lambda: True, raising=False)
    asked: list[str] = []

    given = consent(yes=False, no_generate=False, ask=lambda question: asked.append(question) or reply)

    assert given == allowed
    assert "Novita charges for it" in asked[0]


def test_flags_decide_without_asking():
    def never(question: str) -> str:
        raise AssertionError("asked")

    assert consent(yes=True, no_generate=False, ask=never) is True
    assert consent(yes=False, no_generate=True, ask=never) == "--no-generate"


def test_a_skipped_image_is_not_a_failure():
    checks = [Check("reachable", "ok", "answers"), Check("one image", "skipped", "--no-generate")]

    assert as_json(checks)["ok"] is True
    assert as_json([*checks, Check("API key", "failed", "HTTP 403", "fix")])["ok"] is False
