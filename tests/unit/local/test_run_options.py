"""`make run`'s options: FRESH=1 (or --fresh) starts clean."""

from __future__ import annotations

import pytest

import local.__main__ as run_command


@pytest.mark.parametrize(
    ("argv", "fresh_env", "fresh"),
    [(["run"], None, False), (["run"], "1", True), (["run"], "0", False), (["run", "--fresh"], None, True)],
)
def test_fresh_reaches_the_stack(monkeypatch, argv, fresh_env, fresh):
    served = {}
    monkeypatch.setattr(run_command, "serve", lambda port, keys, **options: served.update(options) or 0)
    if fresh_env is None:
        monkeypatch.delenv("FRESH", raising=False)
    else:
        monkeypatch.setenv("FRESH", fresh_env)

    assert run_command.main(argv) == 0

    assert served == {"fresh": fresh}
