"""engine.ipcw.followed_at_least: the per-second table gives the binary search's counts exactly."""

import numpy as np
import pytest

from engine import ipcw


def _reference(follow: np.ndarray, t: np.ndarray) -> np.ndarray:
    return len(follow) - np.searchsorted(np.sort(follow), t, side="left")


@pytest.mark.parametrize("seed", range(5))
def test_whole_second_follow_ups_counted_as_the_search_does(seed):
    rng = np.random.default_rng(seed)
    follow = rng.integers(0, 5000, 3000).astype(float)
    t = np.concatenate([rng.uniform(-10, 5100, 4000), follow[:500], [0.0, follow.max(), follow.max() + 0.5, -1.0]])
    got = ipcw.followed_at_least(follow, t)
    assert np.array_equal(got, _reference(follow, t))
    assert got.dtype.kind == "i"


def test_fractional_follow_ups_fall_back_to_the_search():
    rng = np.random.default_rng(9)
    follow = rng.uniform(0, 100, 500)
    t = rng.uniform(0, 100, 800)
    assert np.array_equal(ipcw.followed_at_least(follow, t), _reference(follow, t))


def test_weights_ignore_unresolved_times():
    """An unresolved journey's time may be NaN: its weight is 0 and it must not reach the table."""
    follow = np.array([10.0, 20.0, 30.0, 40.0])
    known = np.array([5.0, np.nan, 25.0, 40.0])
    resolved = np.array([True, False, True, True])
    assert ipcw.weights(known, resolved, follow).tolist() == [1.0, 0.0, 2.0, 4.0]
