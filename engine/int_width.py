"""Integer arrays as narrow as their values allow: row numbers, state codes and counts in int32.

The estimates' inputs (engine.snapshot_estimates.Inputs) hold a few step-sized and visit-sized arrays of
row numbers, state codes and counts for the whole snapshot stage; at 10 M events int64 made ~300 MB of
them, twice what their values need. An array is narrowed only when a bound on its values (and on every
value searched for in it) fits int32; past that it stays int64, so nothing wraps. Keys that combine
values (row * states + state) are built in int64 by their callers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INT32_MAX = int(np.iinfo(np.int32).max)


def index_type(bound: int) -> type[np.signedinteger[Any]]:
    """int32 when every value lies in [-1, bound] and bound fits it, else int64."""
    return np.int32 if int(bound) <= INT32_MAX else np.int64


def narrowed(values: np.ndarray, bound: int) -> np.ndarray:
    """`values` (integers in [-1, bound]) as index_type(bound): a copy only when the type changes."""
    return values.astype(index_type(bound), copy=False)


def searchsorted(a: np.ndarray, v: Any, side: str = "left") -> np.ndarray:
    """np.searchsorted(a, v, side) without the copy numpy makes of all of `a` when `v` has a wider type (an
    int32 step array searched with int64 bounds: a 40 MB copy per call at 10 M events). `v` is converted to
    a's type when its values fit, else the search is numpy's own (the same result either way)."""
    v = np.asarray(v)
    if a.dtype.kind == "i" and v.dtype.kind in "iu" and v.dtype != a.dtype:
        info = np.iinfo(a.dtype)
        if not v.size or (info.min <= int(v.min()) and int(v.max()) <= info.max):
            v = v.astype(a.dtype)
    return np.searchsorted(a, v, side=side)  # type: ignore[call-overload]
