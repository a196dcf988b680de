"""The feed's plain wording of numbers (engine.app.render uses the same): one decimal of a percent, signed points.

Kinds word their finding's effect with these when the typed headline (narrator.measures) has no pattern
whose fields are all present."""

from __future__ import annotations

from typing import Any


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def pts(value: Any) -> str:
    """A difference of two proportions in percentage points, signed: '+41.2 pts'."""
    return "–" if value is None else f"{100 * float(value):+.1f} pts"


def times(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}×"


def name(entity: Any) -> str:
    return str(entity or "").split(":", 1)[-1]
