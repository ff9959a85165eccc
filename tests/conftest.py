"""Shared test helpers."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def load_event(name: str) -> dict:
    """A sample event from events/, the same files `sam local invoke -e` takes."""
    return json.loads((EVENTS / name).read_text())
