"""Inverse-probability-of-censoring weighting (IPCW): unbiased shares and medians from journeys still in progress.

The quantity is a property of a journey's *whole* window (which path it took,
how long it lasted), so a journey contributes only once its end is known.
Keeping just those journeys is biased: at the data end, short journeys are
over-represented among the finished ones (a slow conversion is still open when
a quick drop-off has already ended). IPCW undoes exactly that selection.

Journey i started c_i before the data end (its follow-up; known for every
journey, finished or not) and its end becomes known T_i after its start (the
outcome event, or the drop-off decision: last step + `inactive_for`, or the
window end; T_i ≤ window). It is *resolved* when T_i ≤ c_i. Censoring is
administrative (the data simply ends), so c is independent of the journey's
course given the scope, and

    P(resolved | journey) = G(T_i),   G(u) = P(c ≥ u)

with G estimated by the scope's own follow-up distribution, Ĝ(u) = #{j : c_j ≥ u} / N
(no reverse Kaplan–Meier needed: every journey's c is observed). Any f of
the whole journey then has E[1{resolved} f / G(T)] = E[f]: the weighted
resolved journeys stand for all N. Shares use the ratio (Hájek) form
Σ w·y / Σ w, so they sum to 1 and equal the plain completed-only share when no
journey is censored (all weights are then exactly 1). With f = 1{D ≤ t} the
weighted distribution is the Kaplan–Meier curve in its IPCW form (Satten &
Datta 2001), so the median is read off that curve; unlike a plain KM on T it
also serves a quantity D ≠ T (a dropped journey's duration stops at its last
step, though its end is known only `inactive_for` later).

Variance: the sandwich Σ w_i² (y_i − p̂)² / (Σ w)², treating Ĝ as known
(estimating G from the data only lowers the true variance, so the interval
is, if anything, conservative; the simulation study measures its coverage).
Share intervals use the log(−log) scale of engine.incidence; the median's
interval inverts the test of F(t) = ½ (Brookmeyer & Crowley 1982):
{t : |F̂(t) − ½| ≤ z·se(F̂(t))}.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.incidence import Z95, loglog_interval

ESTIMATOR = "ipcw"


def weights(known_time: np.ndarray, resolved: np.ndarray, follow_up: np.ndarray) -> np.ndarray:
    """1 / Ĝ(T_i) for resolved journeys, 0 for the others; Ĝ from every journey's follow-up (same order)."""
    return FollowUp(follow_up).weights(known_time, resolved)


def followed_at_least(follow: np.ndarray, t: np.ndarray) -> np.ndarray:
    """How many of the follow-ups `follow` are ≥ each t (FollowUp.at_least)."""
    return FollowUp(follow).at_least(np.asarray(t, dtype=float))


class FollowUp:
    """One scope's follow-ups, counted once for every weight the scope needs (its journeys' 1 / Ĝ(T) and its
    steps' 1 / Ĝ(τ) read the same Ĝ): the counts are exact integers however they are found, so sharing them
    changes no bit.

    Follow-ups in whole seconds (every log with second timestamps) are counted per second once and read off a
    table: a binary search of 10 M entry times in 1.3 M follow-ups jumped around memory for 0.7 s of the 10 M-event
    build. The table stops at the largest time asked for (⌈max t⌉, at most the window: follow-ups past it count as
    "at least t" for every t asked), so a scope of old journeys does not need one entry per second of its history.
    Otherwise, or for a table far larger than the work, a search of the sorted follow-ups (the same integers)."""

    def __init__(self, follow: np.ndarray) -> None:
        self.follow = np.asarray(follow, dtype=float)
        n = len(self.follow)
        self.top = float(self.follow.max()) if n else 0.0
        self.whole = bool(n and float(self.follow.min()) >= 0 and np.all(self.follow == np.floor(self.follow)))
        self.tail: np.ndarray | None = None  # tail[s]: follow-ups ≥ s (_table), built at the first table lookup
        self.ordered: np.ndarray | None = None  # the sorted follow-ups, for the search

    def weights(self, known_time: np.ndarray, resolved: np.ndarray | None = None) -> np.ndarray:
        """1 / Ĝ(T_i) for the resolved journeys (every one when `resolved` is None), 0 for the others."""
        known = np.asarray(known_time, dtype=float)
        if resolved is None:
            return len(self.follow) / self.at_least(known)
        ok = np.asarray(resolved, dtype=bool)
        out = np.zeros(len(ok))
        out[ok] = len(self.follow) / self.at_least(known[ok])
        return out  # at least one journey (i itself: T_i ≤ c_i) is followed that long: never a division by 0

    def at_least(self, t: np.ndarray) -> np.ndarray:
        """How many follow-ups are ≥ each t."""
        n = len(self.follow)
        if not len(t):
            return np.zeros(0, dtype=np.int64)
        if self.whole and bool(np.isfinite(t).all()):
            cap = min(self.top, max(float(np.ceil(t.max())), 0.0))  # the table's last real second
            if cap <= max(8 * (n + len(t)), 1 << 20):
                tail = self._table(int(cap))
                idx = np.ceil(t)
                np.clip(idx, 0, len(tail) - 1, out=idx)  # ≥ t ⇔ ≥ ⌈t⌉ for whole seconds; < 0: all of them
                return tail[idx.astype(np.intp)]
        if self.ordered is None:
            self.ordered = np.sort(self.follow)
        return n - np.searchsorted(self.ordered, t, side="left")

    def _table(self, cap: int) -> np.ndarray:
        """The per-second tail over 0 .. cap + 1 (kept: built again only for a larger cap). Follow-ups are clipped
        at cap + 1, which keeps every count there: min(c, cap + 1) ≥ s ⇔ c ≥ s for s ≤ cap + 1. With cap = top
        the last entry is 0, what a t past the top reads."""
        if self.tail is None or len(self.tail) < cap + 2:
            clipped = np.minimum(self.follow, cap + 1).astype(np.int64)
            small = np.int32 if len(self.follow) < 2 ** 31 else np.int64  # half the memory the lookups jump in
            self.tail = np.cumsum(np.bincount(clipped, minlength=cap + 2)[::-1], dtype=small)[::-1]
        return self.tail


@dataclass(frozen=True)
class Shares:
    """Weighted share of each key (0..K−1) with its sandwich standard error and 95 % interval."""

    estimate: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    resolved: np.ndarray  # resolved journeys behind each key (unweighted)


def shares(keys: np.ndarray, w: np.ndarray, n_keys: int, z: float = Z95) -> Shares:
    """Hájek shares Σ_{key} w / Σ w over the rows with w > 0 (`keys` in 0..n_keys−1)."""
    keys = np.asarray(keys, dtype=np.int64)
    w = np.asarray(w, dtype=float)
    total, total2 = float(w.sum()), float((w * w).sum())
    if total <= 0:
        zeros = np.zeros(n_keys)
        return Shares(zeros, zeros.copy(), zeros.copy(), zeros.copy(), np.zeros(n_keys, dtype=np.int64))
    mass = np.bincount(keys, weights=w, minlength=n_keys)
    mass2 = np.bincount(keys, weights=w * w, minlength=n_keys)
    p = mass / total
    var = (mass2 * (1 - p) ** 2 + (total2 - mass2) * p ** 2) / total ** 2
    lower, upper = loglog_interval(p, var, z)
    return Shares(p, np.sqrt(var), lower, upper, np.bincount(keys, weights=w > 0, minlength=n_keys).astype(np.int64))


@dataclass(frozen=True)
class Median:
    estimate: float | None
    lower: float | None
    upper: float | None
    resolved: int


def median(values: np.ndarray, w: np.ndarray, z: float = Z95, order: np.ndarray | None = None) -> Median:
    """Median of the weighted distribution (rows with w > 0), and its test-inversion 95 % interval.

    Convention: where F̂ equals ½ exactly on a value, the midpoint to the next value (with equal
    weights this is the usual sample median, DuckDB's `median`), else the smallest value with F̂ ≥ ½.
    `order`: np.argsort(values, kind="stable"), when the caller takes several medians of the same values
    (the rows kept are then in the same order as sorting them alone); or that order restricted to a set of rows
    holding every one with w > 0 (a stable sort of those rows alone: the same rows in the same order).
    """
    values, w = np.asarray(values, dtype=float), np.asarray(w, dtype=float)
    order = np.argsort(values, kind="stable") if order is None else order
    v, w = values[order], w[order]
    keep = w > 0
    if not keep.all():  # (an order over resolved rows alone keeps every row: no copies)
        v, w = v[keep], w[keep]
    if not len(v):
        return Median(None, None, None, 0)
    last = np.append(v[1:] != v[:-1], True)  # last row of each distinct value
    u = v[last]
    w2 = w * w  # once for the total and the running sum: the same floats
    total, total2 = float(w.sum()), float(w2.sum())
    cum, cum2 = np.cumsum(w)[last], np.cumsum(w2)[last]
    f = cum / total
    se = np.sqrt(np.maximum(cum2 * (1 - f) ** 2 + (total2 - cum2) * f ** 2, 0.0)) / total
    at = int(np.searchsorted(f, 0.5, side="left"))
    est = float(u[at]) if at >= len(u) or f[at] != 0.5 or at + 1 >= len(u) else float((u[at] + u[at + 1]) / 2)
    low = np.flatnonzero(f >= 0.5 - z * se)
    high = np.flatnonzero(f > 0.5 + z * se)
    return Median(est, float(u[low[0]]) if len(low) else None, float(u[high[0]]) if len(high) else None, int(len(v)))
