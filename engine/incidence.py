"""Competing-risks cumulative incidence (Aalen–Johansen) at one horizon, vectorised numpy.

The quantity every outcome probability of a snapshot estimates is
P(outcome o within the window | journey started). A journey that is still open
at the data end is right-censored at its follow-up time (data end − start):
it says "no outcome before this time", which is information, so it stays in
the risk set for as long as it was observed instead of being thrown away.

With distinct event times u_1 < … < u_m (only times ≤ the horizon τ matter),
n_j journeys at risk just before u_j (time ≥ u_j: a journey censored at u_j
is still at risk then, the usual convention) and d_jk events of cause k at
u_j (d_j = Σ_k d_jk):

    S(u_j)   = Π_{l ≤ j} (1 − d_l / n_l)                 (Kaplan–Meier, any outcome)
    F_k(τ)   = Σ_{u_j ≤ τ} S(u_{j−1}) · d_jk / n_j        (Aalen–Johansen)

With one cause this is 1 − Kaplan–Meier. Ties are handled exactly (no
jitter), so the result is deterministic. Variance: the Greenwood-type delta
method (Marubini & Valsecchi 1995; the formula `lifelines`'
AalenJohansenFitter uses), at t = τ:

    Var F_k(t) = Σ_{u_j ≤ t} [ (F_k(t) − F_k(u_j))² d_j / (n_j (n_j − d_j))
                              + S(u_{j−1})² d_jk (n_j − d_jk) / n_j³
                              − 2 (F_k(t) − F_k(u_j)) S(u_{j−1}) d_jk / n_j² ]

(the first term is 0 where n_j = d_j: its factor F_k(t) − F_k(u_j) is 0 at
the last time). Intervals are built on the log(−log F) scale, so they stay
inside [0, 1]: F^{exp(± z·se / (F·|log F|))}. An estimate of exactly 0 or 1
has no spread on that scale; its interval is the point itself (the caller
reports n, so a degenerate interval is visible as such).

Unbiasedness needs censoring independent of the journey's outcome given its
start: true for administrative censoring (the data simply ends), which is
the case here; the simulation study (tests/engine/test_incidence_simulation.py,
benchmarks/bench_censoring.py) measures bias and coverage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine import int_width

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
ESTIMATOR = "aalen_johansen"


@dataclass(frozen=True)
class Incidence:
    """Cumulative incidence of each cause at the horizon, with delta-method variance and 95 % interval."""

    estimate: np.ndarray  # (K,)
    variance: np.ndarray  # (K,)
    lower: np.ndarray     # (K,)
    upper: np.ndarray     # (K,)
    n: float              # journeys (total weight) that entered the estimate
    events: np.ndarray    # (K,) events of each cause at or before the horizon

    def se(self) -> np.ndarray:
        return np.sqrt(np.maximum(self.variance, 0.0))


def cumulative_incidence(times: Sequence[float] | np.ndarray, causes: Sequence[int] | np.ndarray, n_causes: int,
                         horizon: float, weights: Sequence[float] | np.ndarray | None = None, z: float = Z95) -> Incidence:
    """Aalen–Johansen F_k(horizon) for causes 0..n_causes−1; cause −1 marks a censored time.

    `weights` are counts of identical (time, cause) rows (default 1 each), so callers can pass
    grouped data. Times must be ≥ 0.
    """
    t = np.asarray(times, dtype=float)
    c = np.asarray(causes, dtype=np.int64)
    w = np.ones(len(t)) if weights is None else np.asarray(weights, dtype=float)
    if len(t) and t.min() < 0:
        raise ValueError("cumulative_incidence: negative time")
    if len(c) and (c.max() >= n_causes or c.min() < -1):
        raise ValueError("cumulative_incidence: cause outside -1..n_causes-1")
    total = float(w.sum())
    is_event = (c >= 0) & (t <= horizon)
    if not is_event.any():
        zeros = np.zeros(n_causes)
        return Incidence(zeros, zeros.copy(), zeros.copy(), zeros.copy(), total, zeros.copy())
    u, slot = np.unique(t[is_event], return_inverse=True)
    d_k = np.zeros((len(u), n_causes))
    np.add.at(d_k, (slot.reshape(-1), c[is_event]), w[is_event])
    return _from_counts([np.ascontiguousarray(d_k[:, k]) for k in range(n_causes)], _at_risk(t, w, u), total, z)


def _from_counts(d_k: Sequence[np.ndarray], n_at_risk: np.ndarray, total: float, z: float,
                 causes: int | None = None, whole: bool = False) -> Incidence:
    """The estimate from events of each cause (one array per cause over the distinct event times, ascending)
    and the weight at risk; `causes`: only the first that many causes (S still counts every cause's events);
    `whole`: every weight at risk is a whole number (counts), so _second_term need not check."""
    d = d_k[0] + d_k[1] if len(d_k) == 2 else np.sum(d_k, axis=0)
    survive = d / n_at_risk  # 1 − d/n in one buffer: the same floats, one temporary fewer
    s_after = np.cumprod(np.subtract(1.0, survive, out=survive))
    s_lag = np.concatenate(([1.0], s_after[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        first_coef = n_at_risk - d
        first_coef *= n_at_risk  # n (n − d): a product is the same float either way round
        np.divide(d, first_coef, out=first_coef)
        first_coef[~(n_at_risk > d)] = 0.0  # np.where(n > d, …, 0.0)
    shared = (s_lag, first_coef, s_lag ** 2, s_lag / n_at_risk ** 2, n_at_risk)
    kept = len(d_k) if causes is None else causes
    # one cause at a time on contiguous arrays: the same floats whichever causes are asked for
    estimate, variance = np.zeros(kept), np.zeros(kept)
    for k in range(kept):
        estimate[k], variance[k] = _one_cause(d_k[k], *shared, whole=whole)
    lower, upper = loglog_interval(estimate, variance, z)
    return Incidence(estimate, variance, lower, upper, total, np.array([c.sum() for c in d_k[:kept]]))


def _one_cause(d: np.ndarray, s_lag: np.ndarray, first_coef: np.ndarray, s_lag2: np.ndarray,
               s_over_n2: np.ndarray, n: np.ndarray, whole: bool = False) -> tuple[float, float]:
    """F_k at the last event time and its delta-method variance (formula in the module docstring). In-place
    steps in the same order as `(gap ** 2 * first_coef).sum()` etc.: the same floats, the same sums."""
    f_path = s_lag * d
    f_path /= n
    f_path = np.cumsum(f_path)
    estimate = f_path[-1]
    gap = np.subtract(estimate, f_path, out=f_path)  # F_k(t) − F_k(u_j)
    term = gap ** 2
    term *= first_coef
    first = term.sum()
    np.multiply(gap, s_over_n2, out=term)
    term *= d
    third = term.sum()
    return float(estimate), max(float(first + _second_term(d, s_lag2, n, whole).sum() - 2.0 * third), 0.0)


def _second_term(d: np.ndarray, s_lag2: np.ndarray, n: np.ndarray, whole: bool = False) -> np.ndarray:
    """S(u_{j−1})² d_jk (n_j − d_jk) / n_j³ at every event time, with n³ as `n ** 3` gives it (libm's pow)
    but 20× cheaper: for whole n ≤ 208063 the product n·n·n is exact (n³ < 2^53), so it is pow's value too;
    above that the two round some exact ties differently, so pow is called there (only where d ≠ 0: the
    term is 0 elsewhere whatever n³ is). `whole`: the caller knows every n is a whole number."""
    n3 = n * n * n
    if not (whole and (not len(n) or n.max() <= _EXACT_CUBE)):
        above = n > _EXACT_CUBE if whole else (n > _EXACT_CUBE) | (n != np.floor(n))
        redo = np.flatnonzero((d != 0) & above)
        n3[redo] = n[redo] ** 3
    term = s_lag2 * d
    term *= n - d
    term /= n3
    return term


_EXACT_CUBE = 208063  # the largest whole n with n³ < 2^53


def _at_risk(t: np.ndarray, w: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Total weight with time ≥ each u (one sort and a reverse cumulative sum)."""
    order = np.argsort(t, kind="stable")
    ts, ws = t[order], w[order]
    tail = np.concatenate((np.cumsum(ws[::-1])[::-1], [0.0]))
    return tail[np.searchsorted(ts, u, side="left")]


def loglog_interval(estimate: np.ndarray, variance: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Interval on the log(−log F) scale; the point itself where F is 0 or 1 or the variance is 0."""
    f = np.asarray(estimate, dtype=float)
    inner = (f > 0) & (f < 1) & (np.asarray(variance) > 0)
    safe = np.where(inner, f, 0.5)
    se_t = np.sqrt(np.where(inner, variance, 0.0)) / (safe * np.abs(np.log(safe)))
    with np.errstate(over="ignore"):  # a huge se_t (F next to 0 or 1) overflows exp: the bound is then 0 or 1
        lower = np.where(inner, safe ** np.exp(z * se_t), f)  # F^{exp(+a)} is the smaller one for F in (0, 1)
        upper = np.where(inner, safe ** np.exp(-z * se_t), f)
    return lower, upper


def two_sample_z(f1: float, v1: float, f2: float, v2: float) -> tuple[float, float]:
    """Wald z-test of F2 − F1 from two independent incidence estimates: (z, two-sided p); z > 0 when F2 > F1.

    No spread on either side (both variances 0) gives z = 0, p = 1: no evidence either way.
    """
    var = float(v1) + float(v2)
    if var <= 0.0:
        return 0.0, 1.0
    z = (float(f2) - float(f1)) / math.sqrt(var)
    return z, float(math.erfc(abs(z) / math.sqrt(2.0)))


def first_entry(end_time: np.ndarray, ended: np.ndarray, visit_row: np.ndarray, visit_time: np.ndarray,
                horizon: float, z: float = Z95) -> Incidence:
    """P(a state is entered within `horizon` of the start): Aalen–Johansen with causes 0 = entered (at the
    first visit) and 1 = ended without entering it (at the time the end became known, `ended`); a journey
    neither ended nor in the state is censored at `end_time` (its follow-up). `visit_row` indexes the rows
    of `end_time` that visited the state, `visit_time` their first visit."""
    t = np.asarray(end_time, dtype=float).copy()
    cause = np.where(np.asarray(ended, dtype=bool), 1, -1)
    t[visit_row], cause[visit_row] = visit_time, 0
    return cumulative_incidence(t, cause, 2, horizon, z=z)


class FirstEntries:
    """`first_entry` for every state of one scope, from one ranking of the scope's times.

    A journey's time is its first visit for a state it entered and its end time otherwise, so per state
    only the visiting journeys move: the events "ended without entering" are the scope's ended journeys
    minus the visitors, and the weight at risk at u is (journeys with end time ≥ u) − (visitors with end
    time ≥ u) + (visitors with first visit ≥ u). With every end and visit time ranked once on a common
    grid (their distinct values), each state costs a few counts and one running sum over the grid points
    up to the horizon (no sort, no search); the event times, counts and risk sets are the same integers
    as `first_entry`'s, so the result is bit-for-bit the same (tests/engine/test_incidence.py checks it).
    """

    def __init__(self, grid: np.ndarray, end_rank: np.ndarray, ended: np.ndarray, visit_rank: np.ndarray,
                 horizon: float, z: float = Z95) -> None:
        """`grid`: the distinct end and visit times, ascending; `end_rank`: every journey's end time as a place
        in it; `visit_rank`: the first visit of every (journey, state) the scope will be asked about."""
        if len(grid) and grid[0] < 0:
            raise ValueError("cumulative_incidence: negative time")
        self.grid, self.end_rank, self.visit_rank = grid, end_rank, visit_rank
        self.ended, self.n, self.z = np.asarray(ended, dtype=bool), len(end_rank), z
        self.h = int(np.searchsorted(grid, horizon, side="right"))  # grid points within the horizon
        self.ended_at = np.bincount(end_rank[self.ended], minlength=len(grid))[: self.h]
        self.from_end = _tail(np.bincount(end_rank, minlength=len(grid)))[: self.h]
        self.ended_rank = np.where(self.ended, end_rank, len(grid))  # an open journey ends past the grid

    @classmethod
    def of_times(cls, end_time: np.ndarray, ended: np.ndarray, visit_time: np.ndarray, horizon: float,
                 z: float = Z95) -> FirstEntries:
        """From times: `visit_time` the first visit of every (journey, state) the scope will be asked about."""
        end_t, visits = np.asarray(end_time, dtype=float), np.asarray(visit_time, dtype=float)
        grid, rank = ranks(np.concatenate((end_t, visits)))
        return cls(grid, rank[: len(end_t)], ended, rank[len(end_t):], horizon, z)

    def of(self, visit_row: np.ndarray, visits: np.ndarray | slice) -> Incidence:
        """P(entered within the horizon) of the state entered by journeys `visit_row` (distinct), whose first
        visits are `visits` (indices into the constructor's visits): cause 0 ("entered") only, the one reach
        reports (first_entry's cause 0, bit for bit)."""
        g, h = len(self.grid), self.h
        entered = np.bincount(self.visit_rank[visits], minlength=g)[:h]
        left = np.bincount(self.ended_rank[visit_row], minlength=g + 1)[:h]
        np.subtract(self.ended_at, left, out=left)  # the ended minus the ended visitors, in the count's buffer
        at = np.flatnonzero(np.logical_or(entered, left))
        if not len(at):
            zeros = np.zeros(1)
            return Incidence(zeros, zeros.copy(), zeros.copy(), zeros.copy(), float(self.n), zeros.copy())
        # a visitor counts from its first visit on instead of from its end time: the net change per grid
        # point sums to 0 over the whole grid, so its tail from u is minus its running sum before u
        net = np.bincount(self.end_rank[visit_row], minlength=g)[:h]
        np.subtract(entered, net, out=net)
        before = np.cumsum(net)
        before -= net
        at_risk = self.from_end[at] - before[at]
        d_k = [entered[at].astype(float), left[at].astype(float)]
        return _from_counts(d_k, at_risk.astype(float), float(self.n), self.z, causes=1, whole=True)


def ranks(times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(times, return_inverse=True); whole seconds (up to 8× as many seconds as times) are counted
    into one slot per second instead of sorted, and the empty slots dropped: the same grid and ranks."""
    top = float(times.max()) if len(times) else 0.0
    if len(times) and 0 <= times.min() and top <= 8.0 * len(times) and bool(np.all(times == np.floor(times))):
        present, rank = compact(times.astype(np.int64), int(top) + 1)
        return present.astype(float), rank
    grid, rank = np.unique(times, return_inverse=True)
    return grid, rank.reshape(-1)


def compact(slots: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of `slots` (integers in [0, size)), ascending, and each one's place among them."""
    present, (rank,) = compact_parts([slots], size)
    return present, rank


def compact_parts(parts: Sequence[np.ndarray], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """`compact` of the parts put together, each part's places apart (no joined copy of them)."""
    present = np.zeros(size, dtype=bool)
    for part in parts:
        present |= np.bincount(part, minlength=size) > 0
    # converted once, then summed in place (faster than a sum of booleans); places < size: int32 (int_width)
    place = present.astype(int_width.index_type(size))
    np.cumsum(place, out=place, dtype=place.dtype)
    place -= 1
    return np.flatnonzero(present), [place[part] for part in parts]


def _tail(counts: np.ndarray) -> np.ndarray:
    """Σ counts[j:] for every j (how many are at or after each grid point)."""
    return np.cumsum(counts[::-1])[::-1]
