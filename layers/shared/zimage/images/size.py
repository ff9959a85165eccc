"""The size a request asks for: `W*H`, each side within what the model draws."""

from __future__ import annotations

import re

MIN_SIDE, MAX_SIDE = 256, 1536


_SIZE = re.compile(r"^([0-9]{1,5})\*([0-9]{1,5})$")  # [0-9]: \d matches digits of other scripts too


def parse_size(value: str) -> tuple[int, int]:
    """`"1024*768"` -> (1024, 768); raises ValueError with a message the caller can act on."""
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match:
        width, height = int(match[1]), int(match[2])
        if MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE:
            return width, height
    shown = value if isinstance(value, str) and len(value) <= 40 else f"{str(value)[:40]}..."
    raise ValueError(f"size must be W*H with each side {MIN_SIDE}..{MAX_SIDE}, got {shown}")
