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


@pytest.mark.parametrize("seed", range(3))
def test_one_follow_up_table_serves_calls_with_any_times(seed):
    """A scope's FollowUp is asked for its journeys' and then its steps' times: the table stops at the largest
    time asked (old journeys' follow-ups far past it are clipped, not tabulated) and grows when a later call
    asks further; every count is the search's."""
    rng = np.random.default_rng(seed)
    follow = np.concatenate([rng.integers(0, 3000, 2000), rng.integers(10 ** 6, 4 * 10 ** 6, 500)]).astype(float)
    fu = ipcw.FollowUp(follow)
    for t in (rng.uniform(-5, 1200, 3000), np.round(rng.uniform(0, 2900, 5000)), rng.uniform(0, 100, 50),
              np.array([-3.0, -0.5])):
        assert np.array_equal(fu.at_least(t), _reference(follow, t))
        assert fu.tail is not None and len(fu.tail) <= max(np.ceil(t.max()), 2900) + 2  # clipped at ⌈max t⌉
    assert fu.ordered is None  # whole seconds and a small table: never the search
    t = np.array([follow.max(), follow.max() + 1, 2e6, 1e7, 5.0])  # a table to the top: 4 M entries for 5 times
    assert np.array_equal(fu.at_least(t), _reference(follow, t))
    small = ipcw.FollowUp(follow[:2000])  # no old journeys: times past the top read the table's last entry, 0
    assert np.array_equal(small.at_least(t), _reference(follow[:2000], t)) and small.ordered is None


def test_weights_of_every_row_equal_weights_with_all_resolved():
    rng = np.random.default_rng(4)
    follow = rng.integers(0, 500, 300).astype(float)
    t = rng.uniform(0, 400, 700)
    fu = ipcw.FollowUp(follow)
    assert np.array_equal(fu.weights(t), ipcw.weights(t, np.ones(len(t), bool), follow))
    assert np.array_equal(fu.weights(t), len(follow) / _reference(follow, t))
    assert fu.at_least(np.zeros(0)).tolist() == []
