"""engine.snapshot_estimates._Rows' per-journey columns: rows fetched in any order are placed by their row number,
and the outcomes are numbered as dictionary-encoding the row-ordered column would (the numbering sets the
path keys' tie order), without copying the strings."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from engine import snapshot_estimates as se


def _reference(aj_o: list[str | None], jrow: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The old way: sort the strings by row, dictionary-encode them."""
    order = np.empty(len(jrow), dtype=np.int64)
    order[jrow] = np.arange(len(jrow))
    encoded = pc.dictionary_encode(pa.array(aj_o, pa.string()).take(pa.array(order)))
    codes = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, [str(o) for o in encoded.dictionary.to_pylist()]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunks", [1, 3])
def test_outcome_numbers_follow_the_row_order_not_the_fetch_order(seed, chunks):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    names = ["purchase", "dropoff", "refund", "churn", None]
    aj_o = [names[i] for i in rng.integers(0, len(names), n)]
    jrow = rng.permutation(n)  # the fetch's order: row i of the result holds journey row jrow[i]
    cut = np.sort(rng.integers(0, n + 1, chunks - 1))
    column = pa.chunked_array([pa.array(part, pa.string()) for part in np.split(np.array(aj_o, dtype=object), cut)],
                              pa.string())
    codes, outcomes = se._outcome_codes(column, jrow)
    want_codes, want_outcomes = _reference(aj_o, jrow)
    assert outcomes == want_outcomes
    np.testing.assert_array_equal(codes, want_codes)


def test_no_rows_and_no_outcome():
    codes, outcomes = se._outcome_codes(pa.chunked_array([], pa.string()), np.zeros(0, np.int64))
    assert (len(codes), outcomes) == (0, [])
    codes, outcomes = se._outcome_codes(pa.chunked_array([pa.array([None, None], pa.string())]), np.array([1, 0]))
    assert codes.tolist() == [-1, -1] and outcomes == []


def test_values_are_placed_at_their_row():
    jrow = np.array([2, 0, 3, 1])
    np.testing.assert_array_equal(se._placed(np.array([20.0, 0.0, 30.0, 10.0]), jrow, float), [0.0, 10.0, 20.0, 30.0])
