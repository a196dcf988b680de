"""Per-predicate formulas of the audit: a fact's evidence numbers from recounted snapshot counts.

Each formula gets a `Recount` (a detectors.view.SnapView whose counts were
rebuilt by narrator.recompute from journeys/journey_steps, never read from the
snapshot payload) and applies the detector's documented formula to it. Where a
detector exposes that formula as a function (the reach 2×2, the loop test, the
segment transition divergence) the function is imported, not copied, so the
audit and the detector cannot drift apart; what is independent is the input. Each predicate's kind
(narrator.kinds) names its formula.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from detectors import segment_estimates as seg_est
from detectors.activation_driver import is_candidate, is_driver
from detectors.dropoff import loss_evidence, loss_ranks
from detectors.path_quality import path_evidence, paths_of
from detectors.regression import edge_test, incidence_of, power_evidence, traffic_estimator, traffic_shift
from detectors.repeated_visit import extra_visits, revisit_evidence
from detectors.segment_divergence import transition_divergence
from detectors.shared import baseline, outcome_parts, reach_of, reach_test, reach_tests
from detectors.stats import two_proportion_z
from detectors.view import SnapView
from engine.incidence import two_sample_z
from ontology.errors import JourneyGraphError
from ontology.model import Fact
from ontology.names import entity_states

if TYPE_CHECKING:
    from narrator.recompute import Ctx, Recount


def _name(entity: str) -> str:
    return entity.partition(":")[2]


def _emitter(fact: Fact, builtin: str) -> str:
    """Whose settings recompute a fact: the registered detector that stated it (an extension's own thresholds), else
    the built-in that owns the predicate."""
    from detectors.registry import default_registry

    name = fact.provenance.detector.partition("@")[0]
    return name if name in default_registry() else builtin


def _reach_test(rc: Recount, state: str) -> dict[str, Any]:
    """The reached-vs-not-reached conversion 2×2 of a state (activation driver, necessary, increases); from the
    recounted in-progress estimates when the scope has censored journeys (detectors.state_tests)."""
    t = reach_test(rc, state)
    return {**t.extra, "n": t.n, "n_reached": t.n_reached, "n_not_reached": t.n_not_reached,
            "p_given_reached": t.p_given_reached, "p_given_not_reached": t.p_given_not_reached, "lift": t.lift,
            "reach": reach_of(rc, t), "p_value": t.p_value, "test": t.test, "z": t.z}


def reach_formula(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    """increases_probability_of and necessary_for_conversion: the state's reach 2×2."""
    return _reach_test(rc, _name(fact.subject))


def driver(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    state, m = _name(fact.subject), rc.metrics
    out = _reach_test(rc, state)
    out.update({"removal_effect": m.removal_effect(state, rc.conversion),
                "removal_effect_relative": m.removal_effect_relative(state, rc.conversion),
                "absorption": m.absorption(state, rc.conversion),
                "baseline": baseline(rc),
                "removal_rank": _removal_rank(rc, ctx, state)})
    return out


def _removal_rank(rc: Recount, ctx: Ctx, state: str) -> int | None:
    """1-based rank of `state` among the eligible drivers by absolute removal effect (then name)."""
    cfg = ctx.detector_config("activation_driver")
    parts = outcome_parts(rc)
    eligible = [(-rc.metrics.removal_effect(s, rc.conversion), s) for s, t in reach_tests(rc).items()
                if s not in parts and is_candidate(rc, t, cfg, max(cfg.min_n, ctx.min_group_size), ctx.min_group_size)
                and is_driver(rc, t, cfg)]
    ranked = [s for _, s in sorted(eligible)]
    return ranked.index(state) + 1 if state in ranked else None


def transition(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    a, b = _name(fact.subject), _name(fact.object)
    count, total = rc.count(a, b), rc.out_total(a)
    return {"count": count, "from_total": total, "probability": count / total if total else 0.0,
            "n": total, "chain_probability": rc.metrics.probability(a, b)}


def dropoff(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    states = list(fact.evidence.get("states") or [_name(fact.subject)])
    result = loss_evidence(rc, states)
    result.pop("z")
    ranks = loss_ranks(rc)
    result["loss_rank"] = min(ranks.get(s, len(ranks) + 1) for s in states)
    if len(states) == 1 and states[0] in rc.states:  # on in-progress estimates a state may have no finished journey
        result["chain_exit_probability"] = rc.metrics.exit_probability(states[0])
    elif len(states) > 1:
        result["states"] = states
    return result


def revisited(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    state, detector = _name(fact.subject), _emitter(fact, "repeated_visit")
    ev = revisit_evidence(rc, state, float(ctx.setting(detector, "min_visits_mean", 1.5)),
                          bool(ctx.setting(detector, "merge_lifecycle", True)))
    ev["extra_expected_steps"] = extra_visits(rc.metrics, state)
    return {**ev, "n": ev["n_reached"]}


def common(fact: Fact, seg: Recount, ctx: Ctx) -> dict[str, Any]:
    """more/less_common_in, and a segment's outcome rate (associated_with, kind outcome_rate_difference)."""
    base = ctx.all_scope(seg)
    measured = fact.object if fact.subject.startswith("segment:") else fact.subject
    values = _key_values(ctx, seg)
    if seg_est.uses_estimates(base, values):
        return _common_estimated(seg, values, measured)
    kind, name = measured.split(":", 1)
    x_s = seg.reach_count(name) if kind == "state" else seg.outcome_count(name)
    x_all = base.reach_count(name) if kind == "state" else base.outcome_count(name)
    n_s, n_r = seg.completed, base.completed - seg.completed
    x_r = max(0, x_all - x_s)
    z, p = two_proportion_z(x_s, n_s, x_r, n_r)
    return {"reach_segment": x_s / n_s, "reach_rest": x_r / n_r, "n_segment": n_s, "n_rest": n_r,
            "difference": x_s / n_s - x_r / n_r, "z": z, "p_value": p, "n": n_s + n_r}


def _key_values(ctx: Ctx, seg: Recount) -> list[Recount]:
    """Every value's snapshot of the segment's key (same run: input and config hash), `seg` among them."""
    stored = seg.row["payload"]
    ids = ctx.con.execute(
        "SELECT snapshot_id FROM snapshots WHERE scope = 'segment' AND journey = ? AND coalesce(tenant_id, '') = ? "
        "AND segment_key = ? AND coalesce(json_extract_string(payload, '$.input_hash'), 'None') = ? "
        "AND coalesce(json_extract_string(payload, '$.config_hash'), 'None') = ? ORDER BY snapshot_id",
        [seg.row["journey"], seg.row["tenant_id"] or "", seg.row["segment_key"], str(stored.get("input_hash")),
         str(stored.get("config_hash"))]).fetchall()
    return [ctx.recount(i) for (i,) in ids]


def _others(values: list[Recount], seg: Recount) -> list[Recount]:
    return [v for v in values if v.row["snapshot_id"] != seg.row["snapshot_id"]]


def _observed(seg: Recount, others: list[Recount]) -> dict[str, Any]:
    return {"journeys_segment": seg_est.journeys(seg), "journeys_rest": sum(seg_est.journeys(v) for v in others),
            "completed_segment": seg.completed, "completed_rest": sum(v.completed for v in others),
            "rest": seg_est.REST}


def _common_estimated(seg: Recount, values: list[Recount], measured: str) -> dict[str, Any]:
    """detectors.segment_divergence's in-progress reach test on the recounted estimates of every value."""
    others = _others(values, seg)
    c = seg_est.compare(seg_est.side([seg], measured), seg_est.side(others, measured))
    outcome = measured.startswith("outcome:")
    return {"reach_segment": c.seg.estimate, "reach_rest": c.rest.estimate, "n_segment": round(c.seg.n_eff),
            "n_rest": round(c.rest.n_eff), "difference": c.seg.estimate - c.rest.estimate, "z": c.z,
            "p_value": c.p_value, "n": round(c.seg.n_eff) + round(c.rest.n_eff), "se_segment": c.seg.variance ** 0.5,
            "se_rest": c.rest.variance ** 0.5, **_observed(seg, others),
            "estimator": seg_est.OUTCOME_ESTIMATOR if outcome else seg_est.REACH_ESTIMATOR,
            **({"kind": "outcome_rate_difference", "outcome": measured.split(":", 1)[1]} if outcome else {})}


def diverges(fact: Fact, seg: Recount, ctx: Ctx) -> dict[str, Any]:
    from scipy import stats as sps

    base = ctx.all_scope(seg)
    floor = ctx.floor("segment_divergence", 50)
    values = _key_values(ctx, seg)
    if seg_est.uses_estimates(base, values):
        others = _others(values, seg)
        stat_sum, dof_sum, n_s, n_r, top = seg_est.moves_divergence(seg, others, floor)
        return {"state": top[0], "jsd": top[1], "n_segment": round(n_s), "n_rest": round(n_r), "chi2": stat_sum,
                "dof": dof_sum, "test": seg_est.MOVES_TEST, "n": round(n_s) + round(n_r),
                "p_value": float(sps.chi2.sf(stat_sum, dof_sum)) if dof_sum else 1.0,
                "estimator": seg_est.MOVES_ESTIMATOR, **_observed(seg, others)}
    stat_sum, dof_sum, n_seg, n_rest, top = transition_divergence(base, seg, floor)
    return {"state": top[0], "jsd": top[1], "n_segment": n_seg, "n_rest": n_rest, "chi2": stat_sum, "dof": dof_sum,
            "test": "chi2_homogeneity", "n": n_seg + n_rest,
            "p_value": float(sps.chi2.sf(stat_sum, dof_sum)) if dof_sum else 1.0}


def changed(fact: Fact, after: Recount, ctx: Ctx) -> dict[str, Any]:
    before_id = fact.evidence.get("before_snapshot") or (
        _name(fact.object) if fact.object.startswith("snapshot:") else None)
    if not before_id:
        raise JourneyGraphError(f"fact {fact.fact_id}: evidence names no before_snapshot; cannot recompute")
    before = ctx.recount(str(before_id))
    mature = before.mature and after.mature  # else: resolved steps and Aalen-Johansen (detectors.regression)
    estimator = "completed_only" if mature else "resolved_steps"
    test = None
    if fact.subject.startswith("edge:"):
        src, dst = entity_states(fact.subject)
        (x1, n1, x2, n2), test = edge_test(before, after, src, dst)
        traffic = _traffic(before, after, src, ctx)
    elif mature:
        o = _name(fact.subject)
        x1, n1, x2, n2 = before.outcome_count(o), before.completed, after.outcome_count(o), after.completed
        traffic = (1.0, 1.0, False)
    else:
        return _changed_incidence(fact, before, after, ctx)
    if test is None:
        z, p = two_proportion_z(int(x2), n2, int(x1), n1)
        p_before, p_after = x1 / n1, x2 / n2
    else:
        (z, p, estimator), p_before, p_after = test, x1, x2
    attribution, releases = _attribution(before, after, ctx)
    delta = p_after - p_before
    return {"p_before": p_before, "p_after": p_after, "n_before": n1, "n_after": n2, "delta": delta,
            "relative_change": delta / p_before if p_before > 0 else (1.0 if delta > 0 else 0.0), "z": z,
            "p_value": p, "n": n1 + n2, "traffic_before": traffic[0], "traffic_after": traffic[1],
            "traffic_changed": traffic[2], "before_snapshot": before.row["snapshot_id"],
            "attribution": attribution, "releases": releases, "estimator": estimator,
            **({"traffic_estimator": traffic_estimator(before, after)}
               if fact.subject.startswith("edge:") and traffic_estimator(before, after) else {}),
            **power_evidence(p_before, n1, p_after, n2)}


def _changed_incidence(fact: Fact, before: Recount, after: Recount, ctx: Ctx) -> dict[str, Any]:
    """Conversion within the window on an immature pair: Aalen-Johansen estimates recounted, Wald z-test."""
    o = _name(fact.subject)
    (f1, v1, n1), (f2, v2, n2) = incidence_of(before, o), incidence_of(after, o)
    z, p = two_sample_z(f1, v1, f2, v2)
    attribution, releases = _attribution(before, after, ctx)
    delta = f2 - f1
    return {"p_before": f1, "p_after": f2, "n_before": n1, "n_after": n2, "delta": delta,
            "relative_change": delta / f1 if f1 > 0 else (1.0 if delta > 0 else 0.0), "z": z,
            "p_value": p, "n": n1 + n2, "traffic_before": 1.0, "traffic_after": 1.0, "traffic_changed": False,
            "before_snapshot": before.row["snapshot_id"], "attribution": attribution, "releases": releases,
            "estimator": "aalen_johansen", **power_evidence(f1, n1, f2, n2)}


def _iso(ts: Any) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(ts, "strftime") else str(ts)


def _attribution(before: Recount, after: Recount, ctx: Ctx) -> tuple[str, list[str]]:
    """Release markers inside the comparison window: none -> period, one -> release, more -> ambiguous."""
    if after.row["scope"] == "release_after":
        lo, hi = _iso(before.row["window_start"]), _iso(after.row["window_end"])
        extra = {str(after.row["release"])}
    else:
        lo, hi = _iso(before.row["window_end"]), _iso(after.row["window_end"])
        extra = set()
    names = sorted({name for name, at in ctx.releases if lo <= at < hi} | extra)
    return ("period" if not names else "release" if len(names) == 1 else "ambiguous"), names


def _traffic(before: Recount, after: Recount, src: str, ctx: Ctx) -> tuple[float, float, bool]:
    if src == after.start:
        return 1.0, 1.0, False
    b, a, p = traffic_shift(before, after, src)
    return b, a, bool(p < float(ctx.setting("regression", "traffic_alpha")))


def path(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    """Path quality numbers (detectors.path_quality) over the recomputed top paths and class medians; a segment's
    outcome rate against the rest (also associated_with) is the segment reach formula."""
    if fact.evidence.get("kind") == "outcome_rate_difference":
        return common(fact, rc, ctx)
    from engine.snapshot import Snapshot
    from narrator.recompute import recomputed_payload

    view = SnapView(Snapshot.from_payload(recomputed_payload(ctx, fact.provenance.snapshot_id)))
    states = tuple(entity_states(fact.subject))
    found = [p for p in paths_of(view) if p.states == states and p.outcome == fact.evidence.get("outcome")]
    ev = path_evidence(view, found[0]) if found else None
    if ev is None:
        raise JourneyGraphError(f"path {'>'.join(states)} is not among the recomputed top paths")
    ev.pop("z")
    return {**ev, "kind": fact.evidence.get("kind")}


def outcome_rate(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    from detectors.base_facts import rate_evidence

    return rate_evidence(rc, _name(fact.object))
