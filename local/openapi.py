"""`python -m local openapi`: write the OpenAPI document the API function generates from its
routes and models (committed as openapi.json; a test fails when the two drift apart)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

from local.template import REGION, ROOT

DOCUMENT = ROOT / "openapi.json"


def generate() -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    for folder in (ROOT / "layers" / "shared", ROOT / "functions" / "api"):
        if str(folder) not in sys.path:
            sys.path.append(str(folder))
    spec = importlib.util.spec_from_file_location("zimage_openapi_source", ROOT / "functions" / "api" / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.openapi_document()


def render(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def write(path: Path = DOCUMENT) -> Path:
    path.write_text(render(generate()))
    return path
