"""A size is W*H, and an unquoted `*` in a shell is a glob: `SIZE=1024*768` names a file when one
matches and fails in zsh when none does. Every example a user may paste passes it quoted."""

from __future__ import annotations

import re

from zimage_cli import __main__ as cli

from tests.conftest import ROOT

GENERATED = {"performance.md", "reliability.md"}  # written by make bench and make reliability
# `--size 1024*768`, `--size=...` or `SIZE=1024*768` with no quote before the value.
UNQUOTED_SIZE = re.compile(r"""(?:--size[ =]|\bSIZE=)(?!['"])\S*\*""")


def examples() -> dict[str, str]:
    pages = [ROOT / "README.md", *(page for page in sorted((ROOT / "docs").glob("*.md")) if page.name not in GENERATED)]
    return {
        **{str(page.relative_to(ROOT)): page.read_text() for page in pages},
        "Makefile": (ROOT / "Makefile").read_text(),
        "zimage --help": cli._parser().format_help(),
    }


def test_every_size_in_a_shell_example_is_quoted():
    unquoted = [
        (where, line.strip())
        for where, text in examples().items()
        for line in text.splitlines()
        if UNQUOTED_SIZE.search(line)
    ]

    assert not unquoted, unquoted


def test_the_check_sees_an_unquoted_size():
    assert UNQUOTED_SIZE.search("make demo SIZE=1024*768")
    assert UNQUOTED_SIZE.search("zimage generate fox --size 512*512 -o x.jpg")
    assert not UNQUOTED_SIZE.search("make demo SIZE='1024*768'")
    assert not UNQUOTED_SIZE.search("""-d '{"prompt": "a fox", "size": "1024*768"}'""")
