"""The shared layer's build (layers/shared/Makefile, run by `sam build`): the layer holds zimage
and its requirements with bytecode Lambda can use from a read-only /opt."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from local.layer_build import LAYER_SOURCE as LAYER
from local.layer_build import build_shared_layer
from local.template import load_template


@pytest.fixture(scope="module")
def built_layer(tmp_path_factory) -> Path:
    artifacts = tmp_path_factory.mktemp("layer")
    build_shared_layer(artifacts).check_returncode()
    return artifacts / "python"


def test_the_build_compiles_for_the_functions_runtime():
    runtime = load_template()["Globals"]["Function"]["Runtime"]
    default = re.search(r"^LAMBDA_PYTHON \?= (\S+)$", (LAYER / "Makefile").read_text(), re.MULTILINE)

    assert default and f"python{default.group(1)}" == runtime


def test_another_python_is_refused_since_its_bytecode_would_be_ignored(tmp_path):
    build = build_shared_layer(tmp_path, lambda_python="3.99")

    assert build.returncode != 0
    assert "must be compiled by Python 3.99" in build.stderr
    assert not (tmp_path / "python").exists()


def test_the_layer_holds_zimage_and_its_requirements(built_layer):
    assert sorted(p.name for p in (built_layer / "zimage").glob("*.py")) == sorted(
        p.name for p in (LAYER / "zimage").glob("*.py")
    )
    assert (built_layer / "urllib3" / "__init__.py").exists()
    assert (built_layer / "imagesize" / "__init__.py").exists()


def test_every_module_has_hash_checked_bytecode(built_layer):
    sources = list(built_layer.rglob("*.py"))
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        header = cached.read_bytes()[:8]
        assert header[:4] == importlib.util.MAGIC_NUMBER, source
        assert int.from_bytes(header[4:8], "little") == 0b11, source  # hash-based, checked


def test_a_read_only_layer_with_new_timestamps_imports_from_its_bytecode(built_layer, tmp_path):
    # What Lambda does to a layer: unzip it (new timestamps) under a read-only /opt.
    opt = tmp_path / "opt" / "python"
    shutil.copytree(built_layer, opt)
    for source in opt.rglob("*.py"):
        os.utime(source, (1_000_000_000, 1_000_000_000))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(opt), "PYTHONDONTWRITEBYTECODE": "1"}
    imported = subprocess.run(
        [sys.executable, "-v", "-c", "import zimage.workflow.poll, zimage.runtime"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )

    loaded_from_bytecode = re.findall(r"# code object from '?(\S+?\.pyc)'?$", imported.stderr, re.MULTILINE)
    assert any("zimage/workflow" in path and "poll" in path for path in loaded_from_bytecode)
    assert any("urllib3" in path for path in loaded_from_bytecode)
    assert not re.search(r"^# (bytecode is stale|could not)", imported.stderr, re.MULTILINE)


def test_the_build_needs_no_network(tmp_path, monkeypatch):
    """pip is told to use the downloaded wheels alone: an index it cannot reach fails nothing."""
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there

    build = build_shared_layer(tmp_path)

    assert build.returncode == 0, build.stderr
    assert (tmp_path / "python" / "urllib3" / "__init__.py").exists()
