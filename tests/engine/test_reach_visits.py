"""Per-scope reach from the build's visits grouped by state once (engine.reach_visits, snapshot_estimates._reach).

A random build (journeys ordered by class, first visits ordered by (row, state) as step_shares gives them,
tied whole-second or fractional times) and scopes made of class lists: every scope's per-state visits, its
grid and every reach entry (unrounded) equal the direct computation from the scope's own arrays, which is
`reach_estimate` per state (incidence.first_entry) bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import reach_visits, snapshot_estimates

N_STATES, N_CLASSES, WINDOW = 6, 8, 40.0


class _Rows:
    """The columns of snapshot_estimates._Rows that reach reads."""

    def __init__(self, **columns: object) -> None:
        self.__dict__.update(columns)


def _build(seed: int, whole: bool, n: int = 1500) -> _Rows:
    """Rows ordered by class; state 0 visited by everyone at 0, state 5 by nobody, the rest at random."""
    rng = np.random.default_rng(seed)
    cls = np.sort(rng.integers(0, N_CLASSES, n))
    end_t = rng.integers(0, 60, n).astype(float) if whole else np.round(rng.uniform(0, 60, n), 1)
    reach = np.array([1.0, 0.7, 0.3, 0.05, 0.5, 0.0])
    hit = rng.random((n, N_STATES)) < reach
    row, state = np.nonzero(hit)  # row-major: ordered by (row, state)
    v_t = np.floor(end_t[row] * rng.random(len(row)) * (state > 0))
    v_t = v_t if whole else np.round(end_t[row] * rng.random(len(row)) * (state > 0), 1)
    return _Rows(cls=cls, aj_t=end_t, ended=rng.random(n) < 0.5, censored=rng.random(n) < 0.3,
                           v_row=row.astype(np.int64), v_state=state.astype(np.int64), v_t=v_t,
                           state_names=[f"s{i}" for i in range(N_STATES)])


SCOPES = [list(range(N_CLASSES)), [0], [2, 5, 7], [1, 2, 3, 4], [6]]


def _ranges(rows: _Rows, classes: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo = np.searchsorted(rows.cls, classes, side="left")
    hi = np.searchsorted(rows.cls, classes, side="right")
    return np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]), lo, hi


@pytest.mark.parametrize("whole", [True, False])
def test_scope_visits_and_grid_are_the_scope_own(whole):
    rows = _build(1, whole)
    by_state = reach_visits.ByState(rows.v_row, rows.v_state, rows.v_t, rows.aj_t, N_STATES)
    for classes in SCOPES:
        take, lo, hi = _ranges(rows, classes)
        visits = by_state.scope(lo, hi)
        place = np.full(len(rows.cls), -1)
        place[take] = np.arange(len(take))
        for s in range(N_STATES):
            mine = (rows.v_state == s) & (place[rows.v_row] >= 0)
            run = slice(int(visits.bounds[s]), int(visits.bounds[s + 1]))
            assert np.array_equal(visits.pos[run], place[rows.v_row[mine]]), (classes, s)
            assert np.array_equal(rows.v_t[np.flatnonzero(mine)], by_state.grid[by_state.visit_rank[visits.at[run]]])
        shared = by_state.first_entries(take, visits, rows.ended[take], WINDOW)
        in_scope = np.concatenate((rows.aj_t[take], rows.v_t[place[rows.v_row] >= 0]))
        assert np.array_equal(shared.grid, np.unique(in_scope))
        assert np.array_equal(shared.grid[shared.end_rank], rows.aj_t[take])


@pytest.mark.parametrize("seed,whole", [(2, True), (3, False), (4, True)])
def test_reach_equals_first_entry_per_state(monkeypatch, seed, whole):
    """Every entry unrounded: the shared computation against `reach_estimate` on the scope's own arrays."""
    monkeypatch.setattr(snapshot_estimates, "r6", lambda v: None if v is None else float(v))
    rows = _build(seed, whole)
    rows.censored[rows.cls == 6] = False  # a scope with nothing censored: the completed-only ratio
    for classes in SCOPES:
        take, lo, hi = _ranges(rows, classes)
        got = snapshot_estimates._reach(rows, take, lo, hi, WINDOW)
        place = np.full(len(rows.cls), -1)
        place[take] = np.arange(len(take))
        want = {}
        for s in range(N_STATES):
            mine = np.flatnonzero((rows.v_state == s) & (place[rows.v_row] >= 0))
            if len(mine):
                want[f"s{s}"] = snapshot_estimates.reach_estimate(
                    rows.aj_t[take], rows.ended[take], bool(rows.censored[take].any()), place[rows.v_row[mine]],
                    rows.v_t[mine], WINDOW)
        assert list(got) == sorted(want) and got == want, classes
    assert "s5" not in got and got["s0"]["reached"] == len(take)


@pytest.mark.parametrize("runs", [0, 1, 3, 256, 257, 2000])
def test_runs_is_the_concatenated_ranges(runs: int) -> None:
    """_runs (shifted in place for few runs, by a repeat for many; empty runs among them) = the aranges joined."""
    rng = np.random.default_rng(runs)
    start = rng.integers(0, 10_000, runs)
    length = rng.integers(0, 40, runs) * (rng.random(runs) < 0.8)
    want = np.concatenate([np.arange(s, s + n) for s, n in zip(start, length)] or [np.zeros(0, np.int64)])
    got = reach_visits._runs(start, length, 10_040)
    assert got.dtype == np.int32 and np.array_equal(got, want)  # places below the bound: int32 (int_width)
    wide = reach_visits._runs(start, length, 2 ** 31)  # a bound past int32: int64, nothing wraps
    assert wide.dtype == np.int64 and np.array_equal(wide, want)


@pytest.mark.parametrize("classes", [[0, 1, 2], [0, 2, 3, 5, 6], [3], [1, 2, 4, 5, 6, 7], [0, 1, 3, 4, 5, 7]])
def test_merged_ranges_hold_the_same_rows_in_the_same_order(classes: list[int]) -> None:
    """Adjacent class ranges joined (an empty class between two keeps them apart only if its bounds do)."""
    cls = np.repeat(np.arange(8), [3, 0, 2, 5, 1, 0, 4, 2])
    lo, hi = np.searchsorted(cls, classes, side="left"), np.searchsorted(cls, classes, side="right")
    m_lo, m_hi = reach_visits._merged(lo, hi)
    rows = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
    assert np.array_equal(np.concatenate([np.arange(a, b) for a, b in zip(m_lo, m_hi)]), rows)
    assert bool((m_lo[1:] != m_hi[:-1]).all()) and len(m_lo) == 1 + int((lo[1:] != hi[:-1]).sum())


@pytest.mark.parametrize("sizes", [(0, 0), (5, 0), (0, 7), (300, 2000), (1, 1)])
def test_compact_parts_is_compact_of_the_joined_parts(sizes: tuple[int, int]) -> None:
    """The parts' distinct values and places without joining them: np.unique's grid and inverse, split back."""
    from engine import incidence

    rng = np.random.default_rng(sum(sizes))
    a, b = rng.integers(0, 500, sizes[0]), rng.integers(200, 900, sizes[1])
    grid, inverse = np.unique(np.concatenate((a, b)), return_inverse=True)
    present, (at_a, at_b) = incidence.compact_parts((a, b), 1000)
    assert np.array_equal(present, grid) and at_a.dtype == at_b.dtype == np.int32  # places < size: int_width
    assert np.array_equal(np.concatenate((at_a, at_b)), inverse.reshape(-1))
