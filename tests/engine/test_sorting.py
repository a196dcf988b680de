"""engine.sorting.stable_order is np.argsort(kind="stable") whatever the values."""

import numpy as np
import pytest

from engine import sorting

CASES = {
    "state codes": lambda rng: rng.integers(0, 40, 5000),
    "counts as floats": lambda rng: rng.integers(0, 300, 5000).astype(float),
    "fractions": lambda rng: rng.integers(0, 300, 5000) / 4,
    "negative": lambda rng: rng.integers(-5, 5, 5000),
    "beyond 16 bits": lambda rng: rng.integers(0, 100_000, 5000),
    "with NaN": lambda rng: np.where(rng.random(5000) < 0.1, np.nan, rng.integers(0, 9, 5000).astype(float)),
    "empty": lambda rng: np.zeros(0, dtype=np.int64),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_permutation_as_numpy_stable_sort(name):
    values = CASES[name](np.random.default_rng(3))
    assert np.array_equal(sorting.stable_order(values), np.argsort(values, kind="stable"))


def test_small_whole_numbers_take_the_radix_path(monkeypatch):
    """The fast path is the one taken for codes (else this module would do nothing)."""
    seen = []
    real = np.argsort
    monkeypatch.setattr(np, "argsort", lambda a, kind=None: seen.append(a.dtype) or real(a, kind=kind))
    sorting.stable_order(np.arange(10, dtype=np.int64)[::-1].copy())
    assert seen == [np.dtype(np.int16)]
