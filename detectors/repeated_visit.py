"""Repeated visits (paper 6.2.5): states journeys keep coming back to."""

from __future__ import annotations

from detectors.context import Context
from detectors.defaults import RepeatedVisitConfig
from detectors.registry import register
from detectors.stats import proportion_test
from detectors.view import SnapView
from ontology.model import Finding


@register
class RepeatedVisit:
    """States visited again and again within one journey, with what the loops cost.

    Flagged when the mean visit count among journeys containing the state
    exceeds min_visits_mean (τ_loop) with ≥ min_n journeys reaching it. Cost:
    extra expected visits to the state per journey from the chain,
    N[start, s]·(1 − 1/N[s, s]) (each a step at least, so a lower bound on the
    extra steps), and the conversion gap between single visitors and repeaters,
    tested with a two-proportion z (Fisher when small) — that test is the
    finding's p-value.
    """

    name = "repeated_visit"
    version = 1
    config = RepeatedVisitConfig
    requires = ("metrics",)
    types = ("repeated_visit",)

    def run(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        for view in ctx.of_scope(*ctx.config.scopes):
            out.extend(self._one(ctx, view))
        return out

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: RepeatedVisitConfig = ctx.config
        found = []
        for state in view.states:
            reached = view.reach_count(state)
            if reached < ctx.floor(cfg.min_n):
                continue
            n_rep = view.repeat_count(state)
            n_single = reached - n_rep
            conv_rep = view.repeat_outcome(state, view.conversion)
            conv_single = view.reach_outcome(state, view.conversion) - conv_rep
            z, p, test = proportion_test(conv_single, n_single, conv_rep, n_rep)
            visits_mean = view.visit_count(state) / reached
            if visits_mean <= cfg.min_visits_mean or n_rep < ctx.min_group_size:
                ctx.record(f"repeat:{view.snapshot_id}:{state}", p)
                continue
            found.append(self._finding(ctx, view, state, (n_rep, n_single, conv_rep, conv_single), visits_mean, p, test))
        return found

    def _finding(self, ctx: Context, view: SnapView, state: str, counts: tuple[int, int, int, int],
                 visits_mean: float, p: float, test: str) -> Finding:
        n_rep, n_single, conv_rep, conv_single = counts
        p_rep = conv_rep / n_rep if n_rep else 0.0
        p_single = conv_single / n_single if n_single else 0.0
        evidence = {
            "visits_mean": visits_mean, "reach": view.reach(state), "n_reached": view.reach_count(state),
            "n_repeat": n_rep, "p_convert_repeat": p_rep, "p_convert_single": p_single,
            "conversion_gap": p_single - p_rep, "extra_expected_steps": _extra_visits(ctx, view, state), "test": test,
        }
        return ctx.finding(view, type="repeated_visit", subject=f"state:{state}", predicate="is_revisited_in",
                           object=f"journey:{view.journey}", n=view.reach_count(state), effect=p_single - p_rep,
                           p_value=p, evidence=evidence, reach=n_rep / max(1, view.completed),
                           actionable=p_single > p_rep)


def _extra_visits(ctx: Context, view: SnapView, state: str) -> float:
    """Expected visits to `state` beyond the first, per journey: N[start,s]·(1 − 1/N[s,s])."""
    m = ctx.shared("metrics", view)
    i, j = list(m.states).index(m.start), list(m.states).index(state)
    n_ss = float(m.N[j, j])
    return float(m.N[i, j]) * (1.0 - 1.0 / n_ss) if n_ss > 0 else 0.0
