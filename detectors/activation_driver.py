"""Activation drivers (paper 6.2.1) and states necessary for conversion."""

from __future__ import annotations

import logging

from detectors.context import Context
from detectors.defaults import ActivationDriverConfig
from detectors.registry import register
from detectors.shared import ReachTest, baseline, reach_of
from detectors.view import SnapView
from ontology.errors import EngineError
from ontology.model import Finding

log = logging.getLogger(__name__)


@register
class ActivationDriver:
    """States whose visitors convert far more often than journeys that skip them.

    Per snapshot: reach ≥ min_reach, lift ≥ min_lift and n_reached ≥ min_n pick
    candidates; the reached-vs-not 2×2 table is tested (two-proportion z, Fisher
    when small); candidates are ranked by the paper's absolute removal effect
    and the top_k kept. Lift undefined because nobody converts without the state
    → necessary_for_conversion. A state that is part of an outcome (logged at
    its event, see detectors.leakage) is neither. Every state's 2×2 test counts in BH.

    Once the snapshot's scope has censored journeys, the 2×2, reach and baseline come from its in-progress
    estimates (detectors.state_tests: IPCW conversion rates over every journey whose end is known, Wald z
    with floored variances, lift = the ratio of the two estimates; sizes effective, floors on them); "nobody
    converts without it" is then an estimated P(conversion | not reached) of exactly 0 over at least
    min_group_size effective journeys. The removal-effect ranking keeps using the chain of completed journeys'
    transitions (a property of the step model, not of one state's 2×2). With nothing censored, unchanged.
    """

    name = "activation_driver"
    version = 2
    config = ActivationDriverConfig
    requires = ("reach_tests", "removal_effects", "outcome_parts")
    family = "structure"  # BH family: one snapshot's own structure
    types = ("activation_driver", "necessary_for_conversion")

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: ActivationDriverConfig = ctx.config
        tests: dict[str, ReachTest] = ctx.shared("reach_tests", view)
        parts = ctx.shared("outcome_parts", view)
        drivers, necessary = [], []
        for state, t in tests.items():
            eligible = state not in parts and is_candidate(view, t, cfg, ctx.floor(cfg.min_n), ctx.min_group_size)
            if eligible and t.lift is None and t.p_given_reached > 0 and t.conv_not_reached == 0:
                necessary.append(t)
            elif eligible and is_driver(view, t, cfg):
                drivers.append(t)
            else:
                ctx.record(f"reach:{view.snapshot_id}:{state}", t.p_value)
        try:
            effects = ctx.shared("removal_effects", view) if drivers else {}
        except EngineError as exc:  # a chain with a trapped loop: no removal effects, so no ranking
            log.warning("activation_driver: snapshot %s skipped: %s", view.snapshot_id, exc)
            for t in drivers:
                ctx.record(f"reach:{view.snapshot_id}:{t.state}", t.p_value)
            drivers = []
        drivers.sort(key=lambda t: (-effects.get(t.state, (0.0, 0.0))[0], t.state))
        for t in drivers[cfg.top_k:]:
            ctx.record(f"reach:{view.snapshot_id}:{t.state}", t.p_value)
        found = [self._driver(ctx, view, t, effects.get(t.state, (0.0, 0.0)), i + 1)
                 for i, t in enumerate(drivers[:cfg.top_k])]
        return found + [self._necessary(ctx, view, t) for t in necessary]

    def _driver(self, ctx: Context, view: SnapView, t: ReachTest, effect: tuple[float, float], rank: int) -> Finding:
        metrics = ctx.shared("metrics", view)
        lift = float(t.lift or 0.0)
        evidence = {
            **t.extra, "reach": reach_of(view, t), "lift": lift, "p_given_reached": t.p_given_reached,
            "p_given_not_reached": t.p_given_not_reached, "n_reached": t.n_reached,
            "removal_effect": effect[0], "removal_effect_relative": effect[1],
            "absorption": float(metrics.absorption(t.state, view.conversion)),
            "baseline": baseline(view), "test": t.test, "removal_rank": rank,
        }
        return ctx.finding(view, type="activation_driver", subject=f"state:{t.state}",
                           predicate="is_activation_driver_for", object=f"outcome:{view.conversion}",
                           n=t.n, effect=lift - 1.0, p_value=t.p_value, evidence=evidence,
                           reach=reach_of(view, t), actionable=True)

    def _necessary(self, ctx: Context, view: SnapView, t: ReachTest) -> Finding:
        evidence = {
            **t.extra, "reach": reach_of(view, t), "n_reached": t.n_reached, "p_given_reached": t.p_given_reached,
            "p_given_not_reached": 0.0, "n_not_reached": t.n_not_reached, "test": t.test,
        }
        return ctx.finding(view, type="necessary_for_conversion", subject=f"state:{t.state}",
                           predicate="necessary_for_conversion", object=f"outcome:{view.conversion}",
                           n=t.n, effect=t.p_given_reached, p_value=t.p_value, evidence=evidence,
                           reach=reach_of(view, t), actionable=True)


def is_driver(view: SnapView, t: ReachTest, cfg: ActivationDriverConfig) -> bool:
    """Lift large enough, and the state in the chain that ranks drivers (a state only journeys still in
    progress have visited has no removal effect yet)."""
    return t.lift is not None and t.lift >= cfg.min_lift and t.state in view.states


def is_candidate(view: SnapView, t: ReachTest, cfg: ActivationDriverConfig, floor: int, min_group: int) -> bool:
    """Reach, reached and not-reached sizes large enough to state a driver or a necessary step (narrator's
    removal-rank recount applies the same rule)."""
    return reach_of(view, t) >= cfg.min_reach and t.n_reached >= floor and t.n_not_reached >= min_group
