"""Parse human durations such as 30m, 24h, 14d, 2w, 90s into seconds."""

from __future__ import annotations

import re

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str | int | float) -> int:
    """Return whole seconds; a bare number is taken as seconds."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, (int, float)):
        return int(text)
    match = _PATTERN.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30m, 24h, 14d, 2w)")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(seconds: int) -> str:
    """Inverse of parse_duration for whole units (used in messages and JSON)."""
    for unit in ("w", "d", "h", "m"):
        size = _UNITS[unit]
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
