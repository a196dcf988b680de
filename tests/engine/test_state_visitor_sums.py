"""engine.state_estimates sums the y-weighted terms over the converters alone (`_visitor_sums`): bit for bit the
bincounts over every visitor with weights w·y and w²·y it replaced, and the same counts."""

from __future__ import annotations

import numpy as np
import pytest

from engine import state_estimates


def _reference(state: np.ndarray, wv: np.ndarray, yv: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    part = tuple(np.bincount(state, weights=v, minlength=k) for v in (wv, wv * yv, wv ** 2, wv ** 2 * yv))
    raw = np.bincount(state, weights=wv > 0, minlength=k).astype(np.int64)
    raw_y = np.bincount(state, weights=(wv > 0) & (yv > 0), minlength=k).astype(np.int64)
    return (*part, raw, raw_y)


@pytest.mark.parametrize("seed", range(20))
def test_visitor_sums_are_the_bincounts_over_every_visitor(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.choice([0, 1, 50, 5000])), int(rng.choice([1, 4, 30]))
    state = rng.integers(0, k, n)
    # weights far apart in size (the order they add in shows in the last bits), a third 0 (not ended)
    wv = np.where(rng.random(n) < 0.3, 0.0, np.exp(rng.normal(0, 8, n)))
    converted = rng.random(n) < float(rng.choice([0.0, 0.4]))  # no converter at all, too
    part, raw, raw_y = state_estimates._visitor_sums(state, wv, converted, k)
    got = (*part, raw, raw_y)
    for g, want in zip(got, _reference(state, wv, converted.astype(float), k), strict=True):
        assert g.dtype == want.dtype and np.array_equal(g, want)


def test_the_sums_order_matters_so_the_check_can_fail() -> None:
    """Adding the same weights in another order changes the bits: equality above is a real check."""
    rng = np.random.default_rng(0)
    wv = np.exp(rng.normal(0, 8, 5000))
    state = np.zeros(5000, dtype=np.int64)
    assert np.bincount(state, weights=wv)[0] != np.bincount(state, weights=wv[::-1])[0]
