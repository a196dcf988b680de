"""A scope's step groups read off the build's one sort (engine.step_shares.JourneyOrder, Runs) against the
per-scope sort (step_shares._groups), and a scope's members found run by run (engine.snapshot_estimates._members)
against the gather they replace: the same integers, so every sum over them adds in the same order."""

from __future__ import annotations

import numpy as np
import pytest

from engine import snapshot_estimates, step_shares


def _build(rng: np.random.Generator, n_journeys: int, k: int, max_len: int) -> step_shares.Steps:
    """Resolved steps ordered by journey row (rows with no step too), states looping over k codes."""
    lengths = rng.integers(0, max_len + 1, n_journeys)
    row = np.repeat(np.arange(n_journeys), lengths)
    return step_shares.Steps(row=row, s=rng.random(len(row)) * 10.0, known_t=np.full(len(row), np.nan),
                             src=rng.integers(0, k, len(row)), dst=rng.integers(0, k, len(row)),
                             names=[f"s{i}" for i in range(k)])


def _scope(rng: np.random.Generator, n_journeys: int) -> tuple[np.ndarray, np.ndarray]:
    """Class ranges [lo, hi) of journey rows: ascending, some empty, some adjacent."""
    cuts = np.unique(rng.integers(0, n_journeys + 1, 12))
    lo, hi = cuts[:-1], cuts[1:]
    keep = rng.random(len(lo)) < 0.6
    return lo[keep], hi[keep]


def _old_members(row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.searchsorted(row, lo, side="left"), np.searchsorted(row, hi, side="left")
    pick = np.concatenate([np.arange(x, y) for x, y in zip(a, b)]) if len(a) else np.zeros(0, np.int64)
    offsets = np.cumsum(hi - lo) - (hi - lo)
    return pick, row[pick] - np.repeat(lo - offsets, b - a)


@pytest.mark.parametrize("seed", range(40))
def test_members_and_groups_are_the_per_scope_ones(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 7, 200]))
    k = int(rng.choice([1, 3, 40]))
    steps = _build(rng, n, k, int(rng.choice([1, 4, 60])))
    order = step_shares.JourneyOrder.of(steps)
    for _ in range(4):
        lo, hi = _scope(rng, n)
        pick, pos = snapshot_estimates._members(steps.row, lo, hi)
        old_pick, old_pos = _old_members(steps.row, lo, hi)
        assert np.array_equal(pick, old_pick) and np.array_equal(pos, old_pos) and pos.dtype == old_pos.dtype
        if not len(pick):
            continue
        start, stop = snapshot_estimates._runs(steps.row, lo, hi)
        got = step_shares.Runs(order, start, stop).groups(steps, pick, pos)
        want = step_shares._groups(steps, pick, pos)
        for g, w in zip(got, want, strict=True):
            # the same values; an index array may be narrower on the build-order path (engine.int_width:
            # the step places fit int32), which indexes and counts the same elements
            assert g.dtype.kind == w.dtype.kind and g.dtype.itemsize <= w.dtype.itemsize and np.array_equal(g, w)


@pytest.mark.parametrize("late", [False, True], ids=["every-step", "positivity-cut"])
def test_counted_is_the_same_with_the_build_order(late: bool) -> None:
    rng = np.random.default_rng(3)
    steps = _build(rng, 300, 6, 12)
    lo, hi = np.array([0, 40, 170]), np.array([30, 150, 300])
    pick, pos = snapshot_estimates._members(steps.row, lo, hi)
    follow = 4.0 + rng.random(int((hi - lo).sum())) * (5.0 if late else 40.0)  # late: some steps past positivity
    runs = step_shares.Runs(step_shares.JourneyOrder.of(steps), *snapshot_estimates._runs(steps.row, lo, hi))
    got = step_shares.counted(steps, pick, pos, follow, 30.0, 3, runs=runs)
    want = step_shares.counted(steps, pick, pos, follow, 30.0, 3)
    assert (len(got.pick) < len(pick)) == late
    for name in ("pick", "pos", "w", "group_inv", "group_pos", "group_state", "cell_order", "cell_new"):
        assert np.array_equal(getattr(got, name), getattr(want, name)), name


def test_runs_that_are_not_the_picked_steps_are_refused() -> None:
    steps = _build(np.random.default_rng(1), 20, 3, 5)
    pick, pos = snapshot_estimates._members(steps.row, np.array([0]), np.array([10]))
    start, stop = snapshot_estimates._runs(steps.row, np.array([0]), np.array([20]))
    assert stop[0] - start[0] > len(pick)
    runs = step_shares.Runs(step_shares.JourneyOrder.of(steps), start, stop)
    with pytest.raises(ValueError, match="not the runs"):
        runs.groups(steps, pick, pos)


def test_the_build_order_holds_a_byte_or_two_per_step() -> None:
    """It lives while the scopes run (their memory peak): shifts as small as the longest journey allows."""
    steps = _build(np.random.default_rng(2), 500, 4, 100)
    order = step_shares.JourneyOrder.of(steps)
    assert order.shift.dtype == np.int8 and order.new.dtype == np.uint8
    assert set(np.unique(order.new).tolist()) == {0, 1, 2}
