"""Canonical JSON rendering: sorted keys, fixed separators, so the bytes are stable."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def render(items: Sequence[Mapping[str, Any]]) -> str:
    """A JSON array of feed items, best first; the same items always give the same bytes."""
    return json.dumps(list(items), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
