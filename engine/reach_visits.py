"""A build's first visits grouped by state once, for every scope's reach estimate (engine.snapshot_estimates).

A scope is a set of class ranges of journey rows. With the first visits ordered by (state, journey row)
and every end and visit time ranked on the build's time grid once, a scope's visits of each state are a
few contiguous runs (found by searchsorted, no per-scope sort) and its own time grid is the build's
grid restricted to the times it holds (a count over the grid, no per-scope sort or unique): the same
grid, ranks and per-state visits as sorting the scope's own times, so the estimates are the same floats.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine import incidence, int_width, sorting


@dataclass(frozen=True)
class ScopeVisits:
    """A scope's first visits, state by state: `at[bounds[s]:bounds[s + 1]]` are state s's (places in the
    build's by-state arrays), `pos` each one's journey's place inside the scope."""

    at: np.ndarray
    pos: np.ndarray
    bounds: np.ndarray


class ByState:
    """The first visits (ordered by journey row, as engine.step_shares' first_visits gives them) regrouped by
    state, and the build's end and visit times ranked on one grid."""

    def __init__(self, v_row: np.ndarray, v_state: np.ndarray, v_t: np.ndarray, end_t: np.ndarray,
                 n_states: int) -> None:
        order = sorting.stable_order(v_state)  # stable: rows stay ascending within a state
        self.row = v_row[order]
        self.bounds = np.concatenate(([0], np.cumsum(np.bincount(v_state, minlength=n_states))))
        self.grid, rank = incidence.ranks(np.concatenate((end_t, v_t)))
        rank = int_width.narrowed(rank, len(rank))  # places on the grid, held while the scopes run: int32
        self.end_rank, self.visit_rank = rank[: len(end_t)], rank[len(end_t):][order]

    def scope(self, lo: np.ndarray, hi: np.ndarray) -> ScopeVisits:
        """The visits of the journeys in rows [lo, hi) (class ranges, ascending), grouped by state."""
        lo, hi = _merged(lo, hi)
        n_states = len(self.bounds) - 1
        start, stop = np.empty((n_states, len(lo)), np.int64), np.empty((n_states, len(lo)), np.int64)
        for s in range(n_states):
            a, b = int(self.bounds[s]), int(self.bounds[s + 1])
            start[s] = a + int_width.searchsorted(self.row[a:b], lo)
            stop[s] = a + int_width.searchsorted(self.row[a:b], hi)
        runs = (stop - start).reshape(-1)
        at = _runs(start.reshape(-1), runs, len(self.row))
        offsets = np.cumsum(hi - lo) - (hi - lo)  # where each class's rows start inside the scope
        pos = self.row[at]
        if len(lo) == 1:  # one range of rows: one shift for every visit
            pos -= int(lo[0])
        else:
            pos -= np.repeat(np.tile(lo - offsets, n_states), runs)
        return ScopeVisits(at, pos, np.concatenate(([0], np.cumsum((stop - start).sum(axis=1)))))

    def first_entries(self, take: np.ndarray, visits: ScopeVisits, ended: np.ndarray,
                      horizon: float) -> incidence.FirstEntries:
        """incidence.FirstEntries of the scope's journeys `take` and their `visits`, on the scope's own grid."""
        end_rank, visit_rank = self.end_rank[take], self.visit_rank[visits.at]
        if len(take) == len(self.end_rank):  # every journey: the scope's times are the build's, and so its grid
            return incidence.FirstEntries(self.grid, end_rank, ended, visit_rank, horizon)
        present, (end_at, visit_at) = incidence.compact_parts((end_rank, visit_rank), len(self.grid))
        return incidence.FirstEntries(self.grid[present], end_at, ended, visit_at, horizon)


def _merged(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class ranges [lo, hi) with each one that starts where the one before ends joined to it: the same rows in
    the same order, in fewer ranges (a scope of consecutive classes, every journey's among them, is one)."""
    if len(lo) < 2:
        return lo, hi
    new = np.ones(len(lo), dtype=bool)
    np.not_equal(lo[1:], hi[:-1], out=new[1:])
    last = np.append(new[1:], True)  # a range that ends a joined one
    return lo[new], hi[last]


_FEW_RUNS = 256  # up to this many runs, each one's places are shifted in place (no run-sized repeat)


def _runs(start: np.ndarray, length: np.ndarray, bound: int) -> np.ndarray:
    """The concatenation of arange(start[i], start[i] + length[i]) for every i (each at most `bound`)."""
    before = np.cumsum(length) - length  # where each run starts in the output
    out = np.arange(int(length.sum()), dtype=int_width.index_type(bound))
    if len(start) > _FEW_RUNS:
        out += np.repeat(start - before, length)
        return out
    for s, b, n in zip(start.tolist(), before.tolist(), length.tolist()):
        if n:
            out[b: b + n] += s - b
    return out
