"""Runs the shared layer's build (layers/shared/Makefile, what `sam build` runs) on this machine,
with this interpreter, for the bench's size figure and the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from local.template import ROOT

LAYER_SOURCE = ROOT / "layers" / "shared"
THIS_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
# The layer's requirements for Lambda's platform, downloaded by `make install`, so a build here
# (the unit tests', the bench's) needs no network.
LAYER_WHEELS = ROOT / ".venv" / "layer-wheels"


def build_shared_layer(
    artifacts_dir: Path, *, lambda_python: str = THIS_PYTHON, wheels: Path | None = LAYER_WHEELS
) -> subprocess.CompletedProcess:
    """Build into `artifacts_dir` (the layer's files end up under python/). Compiling for another
    Python than this one is refused by the Makefile, so `lambda_python` is only for testing that.
    With `wheels`, pip installs from that folder alone and never reaches an index."""
    offline = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)} if wheels else {}
    return subprocess.run(  # noqa: S603 - make on our own Makefile
        [
            shutil.which("make") or "make",
            "--no-print-directory",
            "-C",
            str(LAYER_SOURCE),
            "build-SharedLayer",
            f"ARTIFACTS_DIR={artifacts_dir}",
            f"PYTHON={sys.executable}",
            f"LAMBDA_PYTHON={lambda_python}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, **offline},
    )
