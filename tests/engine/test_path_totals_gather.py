"""engine.path_estimate_totals._Totals gathers the shown sequences' rows once (w, y) and makes their columns from
those: bit for bit the sums it took by masking each column of every row."""

from __future__ import annotations

import numpy as np
import pytest

from engine import path_estimate_totals


def _reference_seq(w: np.ndarray, y: np.ndarray, seq: np.ndarray, targets: np.ndarray) -> np.ndarray:
    targets = np.unique(targets)
    y = y.astype(float)
    cols = np.stack([w, w * y, w * w, w * w * y, np.ones(len(w)), y])
    at = np.searchsorted(targets, seq)
    hit = at < len(targets)
    hit[hit] = targets[at[hit]] == seq[hit]
    return np.stack([np.bincount(at[hit], weights=c[hit], minlength=len(targets)) for c in cols])


@pytest.mark.parametrize("seed", range(10))
def test_sequence_sums_are_the_masked_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([0, 1, 50, 20000]))
    w = np.exp(rng.normal(0, 8, n))  # far apart: the order of the sums shows in the bits
    y = rng.random(n) < 0.3
    seq = rng.integers(0, 40, n)
    targets = rng.choice(60, int(rng.choice([1, 5, 10])), replace=True)  # some never taken, repeats
    got = path_estimate_totals._Totals(w, y, seq, targets)
    assert got.seq.tobytes() == _reference_seq(w, y, seq, targets).tobytes()
    assert got.seq.shape == (6, len(np.unique(targets)))
