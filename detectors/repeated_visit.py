"""Repeated visits (paper 6.2.5): states journeys keep coming back to."""

from __future__ import annotations

import math
from typing import Any

from detectors import state_tests
from detectors.context import Context
from detectors.defaults import RepeatedVisitConfig
from detectors.registry import register
from detectors.stats import normal_upper, proportion_test
from detectors.view import SnapView
from ontology.errors import EngineError
from ontology.model import Finding

ACTIONABLE_GAP_P = 0.05  # a loop is actionable when repeaters convert less, at this raw significance


@register
class RepeatedVisit:
    """States visited again and again within one journey, with what the loops cost.

    Flagged when the mean visit count among journeys containing the state
    exceeds min_visits_mean (τ_loop) with ≥ min_n journeys reaching it. Cost:
    extra expected visits to the state per journey from the chain,
    N[start, s]·(1 − 1/N[s, s]) (each a step at least, so a lower bound on the
    extra steps), and the conversion gap between single visitors and repeaters
    with its own two-proportion test (gap_p_value; it counts in BH too). The
    finding's p-value is a one-sided test that the return probability exceeds
    the one τ_loop implies (see `loop_test`); its effect is that return probability.
    Lifecycle variants of one activity (XES SCHEDULE/START/COMPLETE of one work
    item) count as one visit when the snapshot has them (merge_lifecycle).

    Once the scope has censored journeys the visit numbers come from its in-progress estimates
    (detectors.state_tests: IPCW over every journey whose end is known; the loop test at the visitors'
    effective n, the gap a Wald z with floored variances; sizes effective, floors on them). The extra
    expected visits keep coming from the completed journeys' chain. With nothing censored, unchanged.
    """

    name = "repeated_visit"
    version = 2
    config = RepeatedVisitConfig
    requires = ("metrics",)
    family = "structure"  # BH family: one snapshot's own structure
    types = ("repeated_visit",)

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: RepeatedVisitConfig = ctx.config
        est = state_tests.block(view)
        if est is not None and not state_tests.estimable(view, est):
            return []
        found = []
        for state in sorted(est["states"]) if est is not None else view.states:
            if _reached(view, est, state) < ctx.floor(cfg.min_n):
                continue
            ev = revisit_evidence(view, state, cfg.min_visits_mean, cfg.merge_lifecycle)
            p = ev.pop("p_value")
            ctx.record(f"repeat_gap:{view.snapshot_id}:{state}", ev["gap_p_value"])
            if ev["visits_mean"] <= cfg.min_visits_mean or ev["n_repeat"] < ctx.min_group_size:
                ctx.record(f"repeat:{view.snapshot_id}:{state}", p)
                continue
            ev["extra_expected_steps"] = _extra_visits(ctx, view, state)
            actionable = ev["p_convert_single"] > ev["p_convert_repeat"] and ev["gap_p_value"] < ACTIONABLE_GAP_P
            found.append(ctx.finding(view, type="repeated_visit", subject=f"state:{state}",
                                     predicate="is_revisited_in", object=f"journey:{view.journey}",
                                     n=ev["n_reached"], effect=ev["return_probability"], p_value=p,
                                     evidence=ev, reach=_repeat_reach(view, ev),
                                     actionable=actionable))
        return found


def _reached(view: SnapView, est: Any, state: str) -> float:
    return float(est["states"][state]["n_eff_reached"]) if est is not None else view.reach_count(state)


def _repeat_reach(view: SnapView, ev: dict[str, Any]) -> float:
    """Share of the scope's journeys that repeat the state."""
    if "repeat_share" in ev:
        return ev["reach"] * ev["repeat_share"]
    return ev["n_repeat"] / max(1, view.completed)


def revisit_evidence(view: SnapView, state: str, tau: float, merge_lifecycle: bool = True) -> dict[str, Any]:
    """A state's revisit numbers and tests, every count from the snapshot (narrator.recompute_formulas reuses it).

    With `merge_lifecycle` and a snapshot holding `lifecycle_visits` (engine.lifecycle_visits), visits and
    repeats count the lifecycle events of one work item (SCHEDULE, START, COMPLETE) as one visit. A scope
    with censored journeys is read from its in-progress estimates (detectors.state_tests.revisit_numbers).
    """
    est = state_tests.block(view)
    if est is not None:
        return state_tests.revisit_numbers(est, state, tau, merge_lifecycle)
    block = view.payload.get("lifecycle_visits") if merge_lifecycle else None
    lifecycle = bool(block)
    visits = int((block or {}).get("visit_counts", {}).get(state, 0)) if lifecycle else view.visit_count(state)
    n_rep = int((block or {}).get("repeat_counts", {}).get(state, 0)) if lifecycle else view.repeat_count(state)
    conv_rep = (int((block or {}).get("repeat_outcome_counts", {}).get(state, {}).get(view.conversion, 0))
                if lifecycle else view.repeat_outcome(state, view.conversion))
    reached = view.reach_count(state)
    conv_single = view.reach_outcome(state, view.conversion) - conv_rep
    _, p_gap, gap_test = proportion_test(conv_single, reached - n_rep, conv_rep, n_rep)
    _, p = loop_test(visits, reached, tau)
    mean = visits / reached if reached else 0.0
    p_rep = conv_rep / n_rep if n_rep else 0.0
    p_single = conv_single / (reached - n_rep) if reached - n_rep else 0.0
    return {
        "visits_mean": mean, "reach": view.reach(state), "n_reached": reached, "n_repeat": n_rep,
        "p_convert_repeat": p_rep, "p_convert_single": p_single, "conversion_gap": p_single - p_rep,
        "return_probability": 1.0 - 1.0 / mean if mean else 0.0, "test": "geometric_return_z",
        "gap_p_value": p_gap, "gap_test": gap_test, "lifecycle_merged": lifecycle, "p_value": p,
    }


def loop_test(visits: float, reached: float, tau: float) -> tuple[float, float]:
    """One-sided test that the mean visit count among visitors exceeds tau.

    Visits per visitor are geometric under the chain: each visit returns with
    probability r, mean 1/(1 − r). Returns = visits − reached out of `visits`
    trials; H0: r ≤ r0 = 1 − 1/tau, normal approximation to the binomial.
    """
    if visits <= 0 or tau <= 1.0:
        return 0.0, 1.0
    r0 = 1.0 - 1.0 / tau
    r_hat = (visits - reached) / visits
    z = (r_hat - r0) / math.sqrt(r0 * (1.0 - r0) / visits)
    return float(z), normal_upper(z)


def _extra_visits(ctx: Context, view: SnapView, state: str) -> float:
    return extra_visits(ctx.shared("metrics", view), state)


def extra_visits(m: Any, state: str) -> float:
    """Expected visits to `state` beyond the first, per journey, from the chain `m`: N[start,s]·(1 − 1/N[s,s]);
    0 for a state outside the chain (visited only by journeys still in progress) or a trapped loop."""
    if state not in m.states:
        return 0.0
    i, j = list(m.states).index(m.start), list(m.states).index(state)
    try:
        n_ss = float(m.N[j, j])
    except EngineError:  # a trapped loop: the chain gives no finite expectation
        return 0.0
    return float(m.N[i, j]) * (1.0 - 1.0 / n_ss) if n_ss > 0 else 0.0
