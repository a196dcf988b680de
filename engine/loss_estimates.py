"""Where journeys are lost, from every journey of a scope, open ones included (`loss_estimates`, issue 14).

detectors.dropoff asks two things of each state s (a loss is any outcome other than the conversion):

* per move: P(a move out of s goes straight to a loss) against every other state's moves;
* per journey: the share of lost journeys whose last state is s, and how many journeys are lost.

Both are shares of *steps*: a lost journey has exactly one step into a loss (its last), so "lost journeys
leaving from s" is "steps s → loss". This block therefore reuses the per-step resolution of
`resolved_shares` (engine.step_shares) rather than waiting for whole journeys:

* a step's destination is final once the drop-off horizon H has passed since it was entered, or once its
  journey's end is known, or at the window's end; it counts with weight 1 / Ĝ(τ), τ = min(W, s + H, T), the
  very steps and weights of `resolved_shares` (step_shares.counted, computed once for both). τ depends on
  the journey alone, so P(counted | journey) = G(τ) and every weighted sum below is unbiased for the same sum over all the scope's
  steps (step_shares' docstring); ratios are Hájek ratios of such sums.
* why not journey-level IPCW (a journey counted once its end is known, weight 1 / Ĝ(T)): equally unbiased,
  but a journey still active contributes nothing until it ends, so a young scope waits for its slow
  journeys; by steps, an active journey's early moves count H after they happen. A loss by inactivity is
  known H after the last step either way, so the loss counts are no slower, and everything else is faster.
* positivity: in a scope whose longest follow-up F is shorter than the window, only steps entered in the
  journeys' first F − H can be resolved (step_shares), so the numbers are over those steps
  (`entered_within_s`); with a complete journey in the scope nothing is left out.

Variance: the sandwich clustered by journey. With A_js, B_js the weighted loss steps and all steps out of s
of journey j (A_j, B_j summed over states), every number the detector tests is a linear statistic
Σ_j [Σ_{s∈S} (a A_js + b B_js) + c A_j + d B_j] whose variance needs Σ_j of products of these: per state
aa = Σ A_js², ab = Σ A_js B_js, bb = Σ B_js², and the cross moments with the journey totals
xa = Σ A_js A_j, xab = Σ A_js B_j, xba = Σ B_js A_j, xbb = Σ B_js B_j; per scope AA, AB, BB. A set S of
several states (a drop-off cluster) also needs Σ_j of products between two of its states, which the block
does not carry: those are bounded by Cauchy–Schwarz, so a cluster's variance is an upper bound (exact for
one state, and for loss shares, where a journey's one loss step makes the cross products 0).
With nothing censored every weight is 1 and the sums are the completed-only counts.

Test (`loss_test`): Wald z of p_S − p_rest with the clustered variance of the *difference* (one journey moves
through both sides, so their covariance is kept), floored at the sum of the two sides' binomial variances
at their effective n (a delta-method variance near 0 or 1 is far too small). n_eff = p (1 − p) / Var, at
most the raw resolved moves: a journey is lost at most once however often it passes a state, so the
clustered variance can fall below the binomial one, and the effective n never claims more than was seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import step_shares
from engine.incidence import two_sample_z

ESTIMATOR = "resolved_steps_ipcw"
DESCRIPTION = ("resolved_steps_ipcw: moves out of each state into a loss (any outcome but the conversion), over the "
               "steps of resolved_shares with their IPCW weights; masses stand for every journey of the scope; "
               "journey-clustered moments for the detector's variances (engine.loss_estimates)")
_STATE_MOMENTS = ("aa", "ab", "bb", "xa", "xab", "xba", "xbb")


def block(steps: step_shares.Steps, done: step_shares.Counted, follow: np.ndarray, window_s: float,
          horizon_s: int, losses: Sequence[str], moves: step_shares.GroupWeights | None = None) -> dict[str, Any]:
    """`loss_estimates` of one scope from its counted steps (step_shares.counted; journeys' places in `follow`;
    `moves`: their step_shares.GroupWeights, when the caller has them: B_js and its `bb` moment)."""
    from engine.snapshot import r6

    out: dict[str, Any] = {"entered_within_s": _entered_within(follow, window_s, horizon_s),
                           "moves": len(done.pick), "lost": 0, "moves_weight": 0.0, "lost_journeys": 0.0,
                           "moments": {"AA": 0.0, "AB": 0.0, "BB": 0.0}, "states": {}}
    if not len(done.pick):
        return out
    k = len(steps.names)
    is_loss = np.isin(np.array(steps.names, dtype=object), list(losses))
    lost = is_loss[steps.dst[done.pick]]
    lost_journeys = float(np.where(lost, done.w, 0.0).sum())  # over every step: the pairwise sum's own order
    inv, g_state, g_j = done.group_inv, done.group_state, done.group_pos
    # per (journey, state) group: A_js, B_js. A sum that skips a term adds exactly what the term did (+0.0
    # changes no sum), so the loss steps alone give A: a journey has one, not one per step
    lost_inv = inv[lost]
    a_g = np.bincount(lost_inv, weights=done.w[lost], minlength=len(g_state))
    moves = moves or step_shares.GroupWeights(done, k)
    b_g = moves.b
    a_j = np.bincount(g_j, weights=a_g, minlength=len(follow))
    b_j = np.bincount(g_j, weights=b_g, minlength=len(follow))
    hit = np.flatnonzero(a_g)  # the groups with A ≠ 0: every other one adds +0.0 to a sum of products with A
    a_hit, g_hit = a_g[hit], g_state[hit]

    def per_state(x: np.ndarray, at: np.ndarray = g_state) -> np.ndarray:
        return np.bincount(at, weights=x, minlength=k)

    # counts are integers, exact in any order: moves per source state, exits per loss step's source
    sums = {"moves": per_state(np.bincount(inv)), "exits": np.bincount(g_state[lost_inv], minlength=k).astype(float),
            "journeys": np.bincount(g_state, minlength=k).astype(float), "moves_weight": per_state(b_g),
            "exit_weight": per_state(a_hit, g_hit)}
    del lost_inv, a_g
    a_of = a_j[g_j]
    # one moment at a time: each product is a per-group array (~65 MB at 10 M events), and all of them at
    # once were the snapshot stage's peak
    for m, x, y, at in (("aa", a_hit, a_hit, g_hit), ("ab", a_hit, b_g[hit], g_hit), ("bb", b_g, b_g, g_state),
                        ("xa", a_hit, a_of[hit], g_hit), ("xab", a_hit, b_j[g_j[hit]], g_hit),
                        ("xba", b_g, a_of, g_state), ("xbb", b_g, b_j[g_j], g_state)):
        sums[m] = moves.sum_b2 if m == "bb" else per_state(x * y, at)  # bb: Σ B² per state, the moves' own
    counts = ("moves", "exits", "journeys")
    out["states"] = {steps.names[s]: {m: int(round(v[s])) if m in counts else r6(float(v[s])) for m, v in sums.items()}
                     for s in sorted(np.flatnonzero(sums["moves"]).tolist(), key=lambda s: steps.names[s])}
    out.update(lost=int(lost.sum()), moves_weight=r6(float(done.w.sum())), lost_journeys=r6(lost_journeys),
               moments={"AA": r6(_dot(a_j, a_j)), "AB": r6(_dot(a_j, b_j)), "BB": r6(_dot(b_j, b_j))})
    return out


def _entered_within(follow: np.ndarray, window_s: float, horizon_s: int) -> int:
    """How far into their journeys the counted steps were entered: the window once a journey is complete."""
    longest = float(follow.max()) if len(follow) else 0.0
    if longest >= window_s:
        return int(window_s)
    return int(max(longest - horizon_s, 0.0)) if horizon_s >= 0 else 0


@dataclass(frozen=True)
class LossTest:
    """The drop-off numbers of a set of states from one scope's `loss_estimates`."""

    exit_probability: float
    baseline_exit: float
    se: float
    baseline_se: float
    n_eff: float           # binomial-equivalent moves out of the states (p (1 − p) / Var, at most `moves`)
    baseline_n_eff: float
    moves: int             # resolved moves out of the states (raw)
    journeys: int          # journeys with such a move (raw; the most of any one state for several)
    exits: int             # of which into a loss (raw)
    exit_weight: float     # IPCW mass of those: the lost journeys leaving from the states
    loss_share: float
    loss_share_se: float
    lost_journeys: float   # IPCW mass of all lost journeys of the scope
    z: float
    p_value: float


def loss_test(est: Mapping[str, Any], states: Sequence[str]) -> LossTest:
    """Exit probability of `states` (pooled) against every other state's moves: Wald z on the difference with
    its journey-clustered variance, floored at the two sides' binomial variances at their effective n."""
    per = [est["states"].get(s) or {} for s in states]
    m_s, e_s = (sum(float(r.get(k, 0.0)) for r in per) for k in ("moves_weight", "exit_weight"))
    m_all, e_all = float(est["moves_weight"]), float(est["lost_journeys"])
    m_r, e_r = m_all - m_s, e_all - e_s
    p_s, p_r = (e_s / m_s if m_s > 0 else 0.0), (e_r / m_r if m_r > 0 else 0.0)
    moves, exits = sum(int(r.get("moves", 0)) for r in per), sum(int(r.get("exits", 0)) for r in per)
    journeys = max((int(r.get("journeys", 0)) for r in per), default=0)
    v_s = _var(est, per, 1 / m_s, -p_s / m_s, 0.0, 0.0) if m_s > 0 else 0.0
    v_r = _var(est, per, 1 / m_r, -p_r / m_r, -1 / m_r, p_r / m_r) if m_r > 0 else 0.0
    n_s, n_r = _n_eff(p_s, v_s, moves), _n_eff(p_r, v_r, int(est["moves"]) - moves)
    share = e_s / e_all if e_all > 0 else 0.0
    v_share = _var(est, per, 1 / e_all, 0.0, -share / e_all, 0.0) if e_all > 0 else 0.0
    z, p = 0.0, 1.0
    if m_s > 0 and m_r > 0:
        v_d = _var(est, per, 1 / m_s + 1 / m_r, -p_s / m_s - p_r / m_r, -1 / m_r, p_r / m_r)
        pooled = (p_s * n_s + p_r * n_r) / (n_s + n_r) if n_s + n_r > 0 else 0.0
        floor = sum(pooled * (1 - pooled) / n for n in (n_s, n_r) if n > 0)
        z, p = two_sample_z(p_r, 0.0, p_s, max(v_d, floor))
    return LossTest(p_s, p_r, v_s ** 0.5, v_r ** 0.5, n_s, n_r, moves, journeys, exits, e_s, share, v_share ** 0.5, e_all, z, p)


def _var(est: Mapping[str, Any], per: Sequence[Mapping[str, Any]], a: float, b: float, c: float, d: float) -> float:
    """Σ_j (Σ_{s∈S} (a A_js + b B_js) + c A_j + d B_j)², products between two states of S bounded by
    Cauchy–Schwarz (none needed when b = 0: a journey has one loss step, so A_js A_js' = 0)."""
    m = {k: np.array([float(r.get(k, 0.0)) for r in per]) for k in _STATE_MOMENTS}
    own = a * a * m["aa"] + 2 * a * b * m["ab"] + b * b * m["bb"]
    inner = float(own.sum()) if b == 0 else float(np.sqrt(np.maximum(own, 0.0)).sum()) ** 2
    cross = float((a * c * m["xa"] + a * d * m["xab"] + b * c * m["xba"] + b * d * m["xbb"]).sum())
    t = est["moments"]
    total = c * c * float(t["AA"]) + 2 * c * d * float(t["AB"]) + d * d * float(t["BB"])
    return max(inner + 2 * cross + total, 0.0)


def _n_eff(p: float, var: float, moves: int) -> float:
    return min(p * (1 - p) / var, float(moves)) if 0.0 < p < 1.0 and var > 0.0 else float(moves)


def _dot(x: np.ndarray, y: np.ndarray) -> float:
    """Σ x·y by numpy's own (pairwise) sum, not BLAS: a multi-threaded BLAS dot rounds differently with the
    machine's thread count, and its idle threads spun on a core for the rest of the stage (1.2 CPU-s a run)."""
    return float(np.multiply(x, y).sum())
