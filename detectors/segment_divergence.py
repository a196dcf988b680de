"""Segment divergence (paper 6.2.4): each segment value against the rest, one finding per fact and key."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from detectors import segment_estimates as est
from detectors.context import Context
from detectors.defaults import SegmentDivergenceConfig
from detectors.registry import register
from detectors.stats import chi2_homogeneity, chi2_sf, jensen_shannon, two_proportion_z
from detectors.view import SnapView
from ontology.model import Finding


@register
class SegmentDivergence:
    """Segments whose journeys branch differently, or reach states more or less often: one finding per fact.

    "The rest" of segment value k=v is the all-data snapshot's counts minus the
    segment snapshot's counts. Every value of a key is tested against its rest
    (each test counts in BH), and each fact is reported once per segment key,
    through the value that differs most, so the two values of a yes/no segment
    never come out as a mirror pair ("more common in k=false" and "less common
    in k=true"). `values` in the evidence lists every value's own rate.

    Transitions: per state with ≥ min_n transitions out on both sides, a
    chi-square test of homogeneity on the 2×K destination counts; the
    per-state statistics and degrees of freedom are summed into one overall
    test per segment value (states' outgoing rows are separate multinomials);
    the value with the largest Jensen-Shannon divergence (bits) gives one
    diverges_from finding per key (segment:k=v → segment:k=*). Reach: per state
    and per outcome, a two-proportion z-test of the share of completed journeys
    reaching it → more_common_in / less_common_in, one per (state, key); the
    conversion outcome's rate the same way → associated_with (segment:k=v →
    outcome:x, kind outcome_rate_difference), one per key.

    Once journeys of the journey definition are censored (open at the data end, or within a window of it),
    each value is compared with the rest of its key from the snapshots' in-progress estimates instead
    (detectors.segment_estimates: IPCW resolved steps with a Rao–Scott chi-square, first-entry and
    Aalen–Johansen incidence with a Wald z, the rest a stratified mix of the other values): same tests,
    same findings, every journey counted; n_segment / n_rest are then effective sizes and the evidence
    names the estimator. With nothing censored the completed-only counts above are used, unchanged.
    """

    name = "segment_divergence"
    version = 2
    config = SegmentDivergenceConfig
    requires = ()
    family = "comparison"  # BH family: compares snapshots with each other
    types = ("segment_divergence",)

    def run(self, ctx: Context) -> list[Finding]:
        base = ctx.all_view
        if base is None:
            return []
        segments = [v for v in ctx.of_scope("segment") if v.segment is not None]
        mine = [v for v in segments if v.tenant_id == base.tenant_id]
        if est.uses_estimates(base, mine):
            return self._run_estimates(ctx, mine)
        floor = ctx.floor(ctx.config.min_n)
        by_key: dict[str, list[SnapView]] = {}
        for view in segments:
            if view.completed < floor or base.completed - view.completed < floor:
                continue  # too few mature journeys on one side to test anything
            by_key.setdefault(view.segment[0], []).append(view)  # type: ignore[index]
        out: list[Finding] = []
        for _, views in sorted(by_key.items()):
            out.extend(_strongest(ctx, [f for v in views for f in self._transitions(ctx, base, v)],
                                  lambda f: (f.effect, -f.evidence["n_segment"])))
            out.extend(self._reach(ctx, base, views))
        return out

    def _transitions(self, ctx: Context, base: SnapView, seg: SnapView) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        return _diverges(ctx, seg, transition_divergence(base, seg, ctx.floor(cfg.min_n)), {"test": "chi2_homogeneity"},
                         seg.completed / max(1, base.completed))

    def _reach(self, ctx: Context, base: SnapView, views: list[SnapView]) -> list[Finding]:
        conv = base.conversion  # the drop-off outcome mirrors it when there are two outcomes
        subjects = [(f"state:{s}", s) for s in base.states if s != base.start] + [(f"outcome:{conv}", None)]
        found: list[Finding] = []
        for subject, state in subjects:
            counts = [(v, v.reach_count(state) if state else v.outcome_count(conv)) for v in views]
            x_all = base.reach_count(state) if state else base.outcome_count(conv)
            values = [{"value": v.segment[1], "reached": x, "n": v.completed,  # type: ignore[index]
                       "rate": x / v.completed} for v, x in counts]
            tested = [f for v, x in counts for f in self._one_reach(ctx, base, v, subject, x, x_all, values)]
            found.extend(_strongest(ctx, tested, lambda f: (abs(f.effect), f.effect)))
        return found

    def _one_reach(self, ctx: Context, base: SnapView, seg: SnapView, subject: str, x_s: int, x_all: int,
                   values: list[dict]) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        key, value = seg.segment  # type: ignore[misc]
        n_s, n_r = seg.completed, base.completed - seg.completed
        x_r = max(0, x_all - x_s)
        z, p = two_proportion_z(x_s, n_s, x_r, n_r)
        diff = x_s / n_s - x_r / n_r
        if abs(diff) < cfg.min_reach_difference or (x_s + x_r) < ctx.min_group_size:
            ctx.record(f"reach:{seg.snapshot_id}:{subject}", p)
            return []
        evidence = {"reach_segment": x_s / n_s, "reach_rest": x_r / n_r, "n_segment": n_s, "n_rest": n_r,
                    "difference": diff, "z": z, "segment_key": key, "values": values}
        return _reach_finding(ctx, seg, subject, evidence, n_s + n_r, p, seg.completed / max(1, base.completed))


    # --- journeys still in progress: each value's own estimates against the stratified rest (detectors.segment_estimates)
    def _run_estimates(self, ctx: Context, segments: list[SnapView]) -> list[Finding]:
        floor = ctx.floor(ctx.config.min_n)
        keys: dict[str, list[SnapView]] = {}
        for view in segments:
            keys.setdefault(view.segment[0], []).append(view)  # type: ignore[index]
        out: list[Finding] = []
        for _, values in sorted(keys.items()):
            total = sum(est.journeys(v) for v in values)
            tested = [v for v in values if est.journeys(v) >= floor and total - est.journeys(v) >= floor]
            out.extend(_strongest(ctx, [f for v in tested for f in self._moves(ctx, v, _others(values, v))],
                                  lambda f: (f.effect, -f.evidence["n_segment"])))
            if tested and all(est.followed_a_window(v) for v in values):  # reach within the same horizon everywhere
                out.extend(self._reach_estimated(ctx, values, tested))
        return out

    def _moves(self, ctx: Context, seg: SnapView, others: list[SnapView]) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        return _diverges(ctx, seg, est.moves_divergence(seg, others, ctx.floor(cfg.min_n)),
                         {"test": est.MOVES_TEST, "estimator": est.MOVES_ESTIMATOR, "rest": est.REST,
                          **_observed(seg, others)}, _journey_share(seg, others))

    def _reach_estimated(self, ctx: Context, values: list[SnapView], tested: list[SnapView]) -> list[Finding]:
        conv = values[0].conversion
        states = sorted({s for v in values for s in v.payload.get("reach_estimates") or {}} - {values[0].start})
        found: list[Finding] = []
        for subject in [f"state:{s}" for s in states] + [f"outcome:{conv}"]:
            listed = [{"value": v.segment[1], "reached": est.estimate_of(v, subject)[2],  # type: ignore[index]
                       "n": est.journeys(v), "rate": est.estimate_of(v, subject)[0]} for v in values]
            tests = [f for v in tested for f in self._one_estimated(ctx, v, _others(values, v), subject, listed)]
            found.extend(_strongest(ctx, tests, lambda f: (abs(f.effect), f.effect)))
        return found

    def _one_estimated(self, ctx: Context, seg: SnapView, others: list[SnapView], subject: str,
                       listed: list[dict]) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        key, value = seg.segment  # type: ignore[misc]
        c = est.compare(est.side([seg], subject), est.side(others, subject))
        diff = c.seg.estimate - c.rest.estimate
        expected = c.seg.estimate * c.seg.n_eff + c.rest.estimate * c.rest.n_eff  # reached, at the effective sizes
        floor = ctx.floor(cfg.min_n)
        if abs(diff) < cfg.min_reach_difference or expected < ctx.min_group_size or min(c.seg.n_eff, c.rest.n_eff) < floor:
            ctx.record(f"reach:{seg.snapshot_id}:{subject}", c.p_value)
            return []
        outcome = subject.startswith("outcome:")
        evidence = {"reach_segment": c.seg.estimate, "reach_rest": c.rest.estimate, "n_segment": round(c.seg.n_eff),
                    "n_rest": round(c.rest.n_eff), "difference": diff, "z": c.z, "segment_key": key, "values": listed,
                    "se_segment": c.seg.variance ** 0.5, "se_rest": c.rest.variance ** 0.5,
                    "estimator": est.OUTCOME_ESTIMATOR if outcome else est.REACH_ESTIMATOR, "rest": est.REST,
                    **_observed(seg, others)}
        return _reach_finding(ctx, seg, subject, evidence, round(c.seg.n_eff) + round(c.rest.n_eff), c.p_value,
                              _journey_share(seg, others))


def _others(values: list[SnapView], seg: SnapView) -> list[SnapView]:
    return [v for v in values if v is not seg]


def _journey_share(seg: SnapView, others: list[SnapView]) -> float:
    return est.journeys(seg) / max(1, est.journeys(seg) + sum(est.journeys(v) for v in others))


def _observed(seg: SnapView, others: list[SnapView]) -> dict[str, int]:
    """Journeys behind the estimates: every started one, and the completed ones the old rule would have kept."""
    return {"journeys_segment": est.journeys(seg), "journeys_rest": sum(est.journeys(v) for v in others),
            "completed_segment": seg.completed, "completed_rest": sum(v.completed for v in others)}


def _strongest(ctx: Context, tested: list[Finding], strength: Callable[[Finding], tuple]) -> list[Finding]:
    """The one finding per fact: the strongest of a key's values; the others stay tested (recorded for BH)."""
    if not tested:
        return []
    best = max(tested, key=lambda f: (*strength(f), f.segment or ""))
    for f in tested:
        if f is not best:
            ctx.record(f"finding:{f.snapshot_id}:{f.type}:{f.subject}:{f.object}", f.p_value)  # runner's label form
    return [best]


def transition_divergence(base: SnapView, seg: SnapView, floor: int) -> tuple[float, int, int, int, tuple[str, float]]:
    """Summed chi-square homogeneity of a segment's outgoing rows against the rest (all minus segment).

    Returns (chi2, dof, n_segment, n_rest, (state with the largest JSD, that JSD)); states with fewer
    than `floor` transitions out on either side are skipped. Public so narrator.recompute reuses it
    on recounted views."""
    stat_sum, dof_sum, n_seg, n_rest, top = 0.0, 0, 0, 0, ("", 0.0)
    for state in base.states:
        dests = sorted({d for (s, d) in base.counts if s == state})
        row_seg = np.array([seg.count(state, d) for d in dests], dtype=float)
        row_all = np.array([base.count(state, d) for d in dests], dtype=float)
        row_rest = np.clip(row_all - row_seg, 0, None)
        if row_seg.sum() < floor or row_rest.sum() < floor:
            continue
        stat, dof, _ = chi2_homogeneity(np.vstack([row_seg, row_rest]))
        jsd = jensen_shannon(row_seg, row_rest)
        stat_sum, dof_sum = stat_sum + stat, dof_sum + dof
        n_seg, n_rest = n_seg + int(row_seg.sum()), n_rest + int(row_rest.sum())
        if jsd > top[1] or not top[0]:
            top = (state, jsd)
    return stat_sum, dof_sum, n_seg, n_rest, top


def _diverges(ctx: Context, seg: SnapView, divergence: tuple[Any, ...], extra: dict[str, Any],
              reach: float) -> list[Finding]:
    """The `diverges_from` finding of a chi-square over the segment's moves (completed-only counts or
    in-progress estimates: `extra` says which test and estimator); below the JSD floor only its p is recorded."""
    stat_sum, dof_sum, n_seg, n_rest, top = divergence
    if dof_sum == 0:
        return []
    cfg: SegmentDivergenceConfig = ctx.config
    p = chi2_sf(stat_sum, dof_sum)
    key, value = seg.segment  # type: ignore[misc]
    if top[1] < cfg.min_jsd:
        ctx.record(f"jsd:{seg.snapshot_id}", p)
        return []
    evidence = {"state": top[0], "jsd": top[1], "n_segment": round(n_seg), "n_rest": round(n_rest),
                "test": extra["test"], "chi2": stat_sum, "dof": dof_sum, **extra}
    return [ctx.finding(seg, type="segment_divergence", subject=f"segment:{key}={value}",
                        predicate="diverges_from", object=f"segment:{key}=*", n=round(n_seg) + round(n_rest),
                        effect=top[1], p_value=p, evidence=evidence, reach=reach, actionable=True,
                        segment=f"{key}={value}")]


def _reach_finding(ctx: Context, seg: SnapView, subject: str, evidence: dict[str, Any], n: int, p: float,
                   reach: float) -> list[Finding]:
    """A state reached more or less often in the segment than in the rest (more/less_common_in), or an outcome's
    rate there (associated_with: more/less_common_in take states)."""
    key, value = seg.segment  # type: ignore[misc]
    if subject.startswith("outcome:"):
        evidence = {"kind": "outcome_rate_difference", "outcome": subject.split(":", 1)[1], **evidence}
        predicate, subj, obj = "associated_with", f"segment:{key}={value}", subject
    else:
        predicate = "more_common_in" if evidence["difference"] > 0 else "less_common_in"
        subj, obj = subject, f"segment:{key}={value}"
    return [ctx.finding(seg, type="segment_divergence", subject=subj, predicate=predicate, object=obj, n=n,
                        effect=evidence["difference"], p_value=p, evidence=evidence, reach=reach, actionable=True,
                        segment=f"{key}={value}")]
