"""docs/reliability.md names, for each behaviour only AWS shows, the unit test that pins it: each
named test must exist, or the page would point at nothing."""

from __future__ import annotations

import ast
import re

from local.reliability import ON_AWS, REPORT
from local.template import ROOT


def named_tests() -> list[tuple[str, str]]:
    """(file, test) pairs, `::name` after a file naming a test of that same file."""
    pairs, current = [], None
    for file, name in re.findall(r"`(?:(tests/[\w/]+\.py))?::(test_\w+)`", ON_AWS.read_text()):
        current = file or current
        pairs.append((current, name))
    return pairs


def test_the_page_ends_with_the_section_as_written():
    assert REPORT.read_text().endswith(ON_AWS.read_text())


def test_every_test_the_page_names_exists():
    pairs = named_tests()

    assert len(pairs) >= 15
    for file, name in pairs:
        tree = ast.parse((ROOT / file).read_text())
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in defined, f"{file} has no {name}"
