"""A segment value against the rest of its key from the snapshots' in-progress estimates (issue 14).

The completed-only comparison (detectors.segment_divergence) waits a whole
window for every journey. Once a scope has journeys still in progress, each
segment value's own snapshot carries unbiased estimates that use them
(engine.snapshot_estimates): first-entry incidence `reach_estimates`,
Aalen–Johansen `outcome_probabilities`, and IPCW `resolved_shares` of the
steps out of each state. The rest of value v is the union of the key's other
values (every journey has exactly one value of each key, "(none)" included),
so its estimate is the stratified mix of theirs:

* reach / outcome: F_rest = Σ_j (N_j / N) F_j with N_j the journeys of value j
  (started, open or not: the value is known at the start), Var = Σ_j (N_j / N)² Var F_j
  (disjoint journeys, independent estimates), floored at F (1 − F) / N (no more precise than a simple
  random sample of the rest's journeys). Test: Wald z of F_v − F_rest, each
  side's variance floored at the pooled binomial one at its effective n (the
  delta-method variance at an estimate near 0 or 1 is far too small).
* moves out of a state: p_rest = Σ_j m_j p_j / Σ m_j, with m_j the value's resolved
  steps out of the state (`weight`, their IPCW mass, when the snapshot carries it,
  else their count), Var = Σ_j (m_j / M)² se_j² per destination. Test: chi-square
  homogeneity on effective counts n_eff·p (first-order Rao–Scott: n_eff =
  Σ_b p_b (1 − p_b) / Σ_b se_b², the binomial-equivalent size of the clustered,
  weighted shares), summed over states as the completed-only test does.

Effective n: n_eff = F (1 − F) / Var F (journeys when F is 0 or 1), at most the journeys;
it equals the count when nothing is censored. Reach is P(… within `estimate_horizon_s`), so a key
is compared only when every value was followed for a whole window. Public so
narrator.recompute_formulas applies the same formulas to recounted snapshots.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from detectors.stats import chi2_homogeneity, jensen_shannon
from engine import incidence
from engine.snapshot_reader import SnapshotReader

REACH_ESTIMATOR = "aalen_johansen_first_entry"
OUTCOME_ESTIMATOR = "aalen_johansen"
MOVES_ESTIMATOR = "resolved_steps_ipcw"
MOVES_TEST = "chi2_homogeneity_rao_scott"
REST = "stratified: the key's other values, weighted by their journeys (moves: by their resolved steps)"


def uses_estimates(base: SnapshotReader, values: Sequence[SnapshotReader]) -> bool:
    """In-progress estimates when the journey has censored journeys and every value's snapshot carries them;
    with nothing censored the completed-only counts are the same numbers, exactly."""
    needed = ("reach_estimates", "resolved_shares", "outcome_probabilities")
    return int(base.payload.get("censored") or 0) > 0 and all(k in v.payload for v in values for k in needed)


def journeys(view: SnapshotReader) -> int:
    return int(view.payload.get("journeys") or view.completed)


def followed_a_window(view: SnapshotReader) -> bool:
    p = view.payload
    return int(p.get("estimate_horizon_s", 0)) >= int(p.get("journey_window_s", 0))


@dataclass(frozen=True)
class Side:
    estimate: float
    variance: float
    n_eff: float
    journeys: int


def _n_eff(f: float, var: float, n: int) -> float:
    return f * (1.0 - f) / var if 0.0 < f < 1.0 and var > 0.0 else float(n)


def estimate_of(view: SnapshotReader, subject: str) -> tuple[float, float, int]:
    """(estimate, variance, journeys reached) of a state's reach or an outcome's probability in one snapshot."""
    kind, name = subject.split(":", 1)
    block = view.payload.get("reach_estimates" if kind == "state" else "outcome_probabilities") or {}
    est = block.get(name)
    if est is None:  # never entered in this scope: Aalen–Johansen gives 0 with no spread
        return 0.0, 0.0, 0
    return float(est["estimate"]), float(est["se"]) ** 2, int(est.get("reached", est.get("events", 0)))


def side(views: Sequence[SnapshotReader], subject: str) -> Side:
    """One value's estimate, or the stratified mix of several values' (weights: their journeys)."""
    ns = np.array([journeys(v) for v in views], dtype=float)
    parts = np.array([estimate_of(v, subject)[:2] for v in views], dtype=float).reshape(-1, 2)
    n = float(ns.sum())
    w = ns / n if n > 0 else ns
    f = float(w @ parts[:, 0])
    # never more precise than a simple random sample of its journeys: stratification alone (fixed N_j) would
    # claim more, and the comparison should not gain from how the rest happens to be split into values
    var = max(float((w ** 2) @ parts[:, 1]), f * (1 - f) / n if n > 0 else 0.0)
    return Side(f, var, _n_eff(f, var, int(n)), int(n))


@dataclass(frozen=True)
class ReachComparison:
    seg: Side
    rest: Side
    z: float
    p_value: float


def compare(seg: Side, rest: Side) -> ReachComparison:
    """Wald z of F_segment − F_rest (z > 0: higher in the segment), variances floored at the pooled binomial."""
    total = seg.n_eff + rest.n_eff
    pooled = (seg.estimate * seg.n_eff + rest.estimate * rest.n_eff) / total if total > 0 else 0.0
    floor_s, floor_r = (pooled * (1 - pooled) / n if n > 0 else 0.0 for n in (seg.n_eff, rest.n_eff))
    z, p = incidence.two_sample_z(rest.estimate, max(rest.variance, floor_r), seg.estimate, max(seg.variance, floor_s))
    return ReachComparison(seg, rest, z, p)


def _rows(view: SnapshotReader, state: str) -> dict[str, tuple[float, float, float]]:
    """Destination → (share, se², mixing mass) of the resolved steps out of `state`."""
    out = {}
    for r in view.payload.get("resolved_shares") or []:
        if r["from"] == state:
            out[r["to"]] = (float(r["share"]), float(r["se"]) ** 2, float(r.get("weight", r["count"])))
    return out


def _moves(views: Sequence[SnapshotReader], state: str, dests: list[str]) -> tuple[np.ndarray, np.ndarray, float]:
    """(shares, variances, resolved steps) out of `state`, mixed over `views` by their resolved steps."""
    rows = [_rows(v, state) for v in views]
    mass = np.array([sum(m for _, _, m in r.values()) for r in rows])
    counts = sum(int(c["count"]) for v in views for c in v.payload.get("resolved_shares") or [] if c["from"] == state)
    if mass.sum() <= 0:
        return np.zeros(len(dests)), np.zeros(len(dests)), 0.0
    w = mass / mass.sum()
    p = np.array([[r.get(d, (0.0, 0.0, 0.0))[0] for d in dests] for r in rows])
    v = np.array([[r.get(d, (0.0, 0.0, 0.0))[1] for d in dests] for r in rows])
    return w @ p, (w ** 2) @ v, float(counts)


def rao_scott_n(p: np.ndarray, var: np.ndarray, n: float) -> float:
    """Binomial-equivalent size of weighted, clustered shares (first-order Rao–Scott); n when no spread."""
    spread = float(var.sum())
    return float((p * (1 - p)).sum()) / spread if spread > 0 else n


def moves_divergence(seg: SnapshotReader, others: Sequence[SnapshotReader],
                     floor: int) -> tuple[float, int, float, float, tuple[str, float]]:
    """detectors.segment_divergence.transition_divergence on the estimates: (chi2, dof, n_eff segment, n_eff rest,
    (state with the largest JSD, that JSD)); a state with an effective n below `floor` on a side is held back."""
    stat_sum, dof_sum, n_seg, n_rest, top = 0.0, 0, 0.0, 0.0, ("", 0.0)
    rows = [r for v in (seg, *others) for r in v.payload.get("resolved_shares") or []]
    for state in sorted({r["from"] for r in rows}):
        dests = sorted({r["to"] for r in rows if r["from"] == state})
        p_s, v_s, c_s = _moves([seg], state, dests)
        p_r, v_r, c_r = _moves(others, state, dests)
        ns, nr = rao_scott_n(p_s, v_s, c_s), rao_scott_n(p_r, v_r, c_r)
        if ns < floor or nr < floor:
            continue
        stat, dof, _ = chi2_homogeneity(np.vstack([ns * p_s, nr * p_r]))
        jsd = jensen_shannon(p_s, p_r)
        stat_sum, dof_sum, n_seg, n_rest = stat_sum + stat, dof_sum + dof, n_seg + ns, n_rest + nr
        if jsd > top[1] or not top[0]:
            top = (state, jsd)
    return stat_sum, dof_sum, n_seg, n_rest, top
