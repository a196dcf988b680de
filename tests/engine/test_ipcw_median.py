"""engine.ipcw.median squares the weights once and keeps the ordered rows as they are when every weight is > 0:
bit for bit the median, interval and count it gave before."""

from __future__ import annotations

import numpy as np
import pytest

from engine import ipcw


def _reference(values: np.ndarray, w: np.ndarray, order: np.ndarray, z: float = ipcw.Z95) -> tuple:
    v, w = values[order], w[order]
    keep = w > 0
    v, w = v[keep], w[keep]
    if not len(v):
        return None, None, None, 0
    last = np.append(v[1:] != v[:-1], True)
    u = v[last]
    total, total2 = float(w.sum()), float((w * w).sum())
    cum, cum2 = np.cumsum(w)[last], np.cumsum(w * w)[last]
    f = cum / total
    se = np.sqrt(np.maximum(cum2 * (1 - f) ** 2 + (total2 - cum2) * f ** 2, 0.0)) / total
    at = int(np.searchsorted(f, 0.5, side="left"))
    est = float(u[at]) if at >= len(u) or f[at] != 0.5 or at + 1 >= len(u) else float((u[at] + u[at + 1]) / 2)
    low, high = np.flatnonzero(f >= 0.5 - z * se), np.flatnonzero(f > 0.5 + z * se)
    return est, float(u[low[0]]) if len(low) else None, float(u[high[0]]) if len(high) else None, int(len(v))


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("zeros", [0.0, 0.4, 1.0])
def test_median_is_the_old_one(seed: int, zeros: float) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 400, 20000]))
    values = np.floor(rng.exponential(50, n))  # ties
    w = np.where(rng.random(n) < zeros, 0.0, np.exp(rng.normal(0, 4, n)))
    order = np.argsort(values, kind="stable")
    for o in (order, order[w[order] > 0], None):  # every row, the resolved rows alone, no order given
        got = ipcw.median(values, w, order=o)
        assert (got.estimate, got.lower, got.upper, got.resolved) == _reference(values, w, order)
