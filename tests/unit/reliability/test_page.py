"""docs/reliability.md is reliability/report.md with a run's tables filled in. Its section on what
only AWS does names, for each behaviour, the unit test that pins it: each named test must exist,
and the committed page must carry the section as the template has it."""

from __future__ import annotations

import ast
import re

from local.template import ROOT
from reliability.report import REPORT, TEMPLATE

ON_AWS_HEADING = "## What only AWS does, and the test that pins each"


def on_aws_section() -> str:
    return TEMPLATE.read_text().split(ON_AWS_HEADING, 1)[1]


def named_tests() -> list[tuple[str, str]]:
    """(file, test) pairs; a bare `::name` names a test of the file named before it."""
    pairs, current = [], None
    for file, name in re.findall(r"`(?:(tests/[\w/]+\.py))?::(test_\w+)`", on_aws_section()):
        current = file or current
        pairs.append((current, name))
    return pairs


def test_the_page_carries_the_section_as_the_template_has_it():
    written = (ON_AWS_HEADING + on_aws_section()).replace("$$", "$")  # the template's escape

    assert written in REPORT.read_text()


def test_every_test_the_page_names_exists():
    pairs = named_tests()

    assert len(pairs) >= 15
    for file, name in pairs:
        tree = ast.parse((ROOT / file).read_text())
        defined = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        assert name in defined, f"{file} has no {name}"
