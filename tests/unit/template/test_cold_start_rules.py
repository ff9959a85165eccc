"""The cold-start rules, visible in the tree: the workflow's functions (poll, record_failure,
sweeper, webhook_sender) run on every job and must start fast, so nothing they import reaches
pydantic, which only the API needs (its request model and OpenAPI document, in zimage/api/)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

import pytest

from local.template import ROOT

SHARED = ROOT / "layers" / "shared"
WORKFLOW_FUNCTIONS = ["poll", "record_failure", "sweeper", "webhook_sender"]
# Everything but zimage/api/ serves the workflow's functions too.
WORKFLOW_SIDE = [path for path in (SHARED / "zimage").rglob("*.py") if "api" not in path.relative_to(SHARED).parts]


def imported_modules(path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", WORKFLOW_SIDE, ids=lambda path: str(path.relative_to(SHARED)))
def test_the_workflow_side_of_the_package_never_imports_the_api_side(path):
    imports = imported_modules(path)

    assert not {name for name in imports if name == "pydantic" or name.startswith("pydantic.")}
    assert not {name for name in imports if name == "zimage.api" or name.startswith("zimage.api.")}


@pytest.mark.parametrize("function", WORKFLOW_FUNCTIONS)
def test_a_workflow_function_starts_without_pydantic(function):
    # GIVEN the function's folder and the shared layer on the path, as Lambda sets them
    code = (
        "import importlib.util, json, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(ROOT / 'functions' / function / 'app.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "print(json.dumps(sorted(name for name in sys.modules if name.split('.')[0] == 'pydantic')))\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(SHARED), str(ROOT / "functions" / function)]),
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }

    # WHEN its handler module is imported, as a cold start does
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)  # noqa: S603 - our own interpreter and code

    # THEN pydantic was never loaded
    assert json.loads(loaded.stdout.splitlines()[-1]) == []


def test_the_api_does_load_pydantic_so_the_check_can_see_it():
    code = "import sys; import zimage.api.request; print('pydantic' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(SHARED)}

    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)  # noqa: S603 - our own interpreter and code

    assert loaded.stdout.strip() == "True"
