"""`make demo`'s seed: random unless SEED gives one, and printed either way, so that a picture
can be made again. The CLI it runs is replaced here by a recorder."""

from __future__ import annotations

import re

import pytest

from local import demo
from local.__main__ import main as local_command


@pytest.fixture
def commands(monkeypatch) -> list[list[str]]:
    """The `zimage` command lines the demo runs, against a stack that answers."""
    ran: list[list[str]] = []
    monkeypatch.setattr(demo, "stack_is_serving", lambda url: True)
    monkeypatch.setattr(demo, "zimage", lambda argv: ran.append(argv) or 0)
    for name in ("SEED", "ZIMAGE_URL", "PROMPT", "SIZE", "OUT"):
        monkeypatch.delenv(name, raising=False)
    return ran


def seed_of(argv: list[str]) -> int:
    return int(argv[argv.index("--seed") + 1])


def test_without_seed_each_demo_draws_with_a_new_seed_and_prints_it(commands, capsys):
    assert local_command(["demo"]) == 0
    assert local_command(["demo"]) == 0

    printed = capsys.readouterr().out
    first, second = (seed_of(argv) for argv in commands)
    assert first != second  # one chance in two billion to fail
    assert re.findall(r"SEED=(\d+) with the same prompt and size", printed) == [str(first), str(second)]
    assert f"--seed {first} " in printed  # the command shown is the one run


def test_a_seed_given_is_the_one_used(commands, capsys, monkeypatch):
    monkeypatch.setenv("SEED", "3")

    assert local_command(["demo", "--size", "512*384"]) == 0

    assert seed_of(commands[0]) == 3
    printed = capsys.readouterr().out
    assert "picked at random" not in printed
    assert "--size '512*384' --seed 3 " in printed  # quoted as a shell needs it
