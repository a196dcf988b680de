"""Segment divergence (paper 6.2.4): each segment value against the rest of its segment."""

from __future__ import annotations

import numpy as np

from detectors.context import Context
from detectors.defaults import SegmentDivergenceConfig
from detectors.registry import register
from detectors.stats import chi2_homogeneity, chi2_sf, jensen_shannon, two_proportion_z
from detectors.view import SnapView
from ontology.model import Finding


@register
class SegmentDivergence:
    """Segments whose journeys branch differently, or reach states more or less often, than the rest.

    "The rest" of segment value k=v is the all-data snapshot's counts minus the
    segment snapshot's counts. Transitions: per state with ≥ min_n transitions
    out on both sides, a chi-square test of homogeneity on the 2×K destination
    counts; the per-state statistics and degrees of freedom are summed into one
    overall test per segment value (states' outgoing rows are separate
    multinomials), giving one diverges_from finding (segment:k=v → segment:k=*)
    whose evidence names the state with the largest Jensen-Shannon divergence
    (bits). Reach: per state and per outcome, a two-proportion z-test of the
    share of completed journeys reaching it → more_common_in / less_common_in; the
    conversion outcome's rate the same way → associated_with (segment:k=v →
    outcome:x, kind outcome_rate_difference), since more/less_common_in take states.
    """

    name = "segment_divergence"
    version = 1
    config = SegmentDivergenceConfig
    requires = ()
    family = "comparison"  # BH family: compares snapshots with each other
    types = ("segment_divergence",)

    def run(self, ctx: Context) -> list[Finding]:
        base = ctx.all_view
        if base is None:
            return []
        out: list[Finding] = []
        for view in ctx.of_scope("segment"):
            floor = ctx.floor(ctx.config.min_n)
            if view.segment is None or view.completed < floor or base.completed - view.completed < floor:
                continue  # too few mature journeys on one side to test anything
            out.extend(self._transitions(ctx, base, view))
            out.extend(self._reach(ctx, base, view))
        return out

    def _transitions(self, ctx: Context, base: SnapView, seg: SnapView) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        stat_sum, dof_sum, n_seg, n_rest, top = transition_divergence(base, seg, ctx.floor(cfg.min_n))
        if dof_sum == 0:
            return []
        p = chi2_sf(stat_sum, dof_sum)
        key, value = seg.segment  # type: ignore[misc]
        if top[1] < cfg.min_jsd:
            ctx.record(f"jsd:{seg.snapshot_id}", p)
            return []
        evidence = {"state": top[0], "jsd": top[1], "n_segment": n_seg, "n_rest": n_rest, "test": "chi2_homogeneity",
                    "chi2": stat_sum, "dof": dof_sum}
        return [ctx.finding(seg, type="segment_divergence", subject=f"segment:{key}={value}",
                            predicate="diverges_from", object=f"segment:{key}=*", n=n_seg + n_rest,
                            effect=top[1], p_value=p, evidence=evidence, reach=seg.completed / max(1, base.completed),
                            actionable=True, segment=f"{key}={value}")]

    def _reach(self, ctx: Context, base: SnapView, seg: SnapView) -> list[Finding]:
        cfg: SegmentDivergenceConfig = ctx.config
        key, value = seg.segment  # type: ignore[misc]
        n_s, n_r = seg.completed, base.completed - seg.completed
        found: list[Finding] = []
        items = [(f"state:{s}", seg.reach_count(s), base.reach_count(s)) for s in base.states if s != base.start]
        conv = base.conversion  # the drop-off outcome mirrors it when there are two outcomes
        items.append((f"outcome:{conv}", seg.outcome_count(conv), base.outcome_count(conv)))
        for subject, x_s, x_all in items:
            x_r = max(0, x_all - x_s)
            z, p = two_proportion_z(x_s, n_s, x_r, n_r)
            diff = x_s / n_s - x_r / n_r
            if abs(diff) < cfg.min_reach_difference or (x_s + x_r) < ctx.min_group_size:
                ctx.record(f"reach:{seg.snapshot_id}:{subject}", p)
                continue
            evidence = {"reach_segment": x_s / n_s, "reach_rest": x_r / n_r, "n_segment": n_s, "n_rest": n_r,
                        "difference": diff, "z": z}
            if subject.startswith("outcome:"):  # more/less_common_in take states; an outcome rate is an association
                evidence = {"kind": "outcome_rate_difference", "outcome": subject.split(":", 1)[1], **evidence}
                predicate, subj, obj = "associated_with", f"segment:{key}={value}", subject
            else:
                predicate = "more_common_in" if diff > 0 else "less_common_in"
                subj, obj = subject, f"segment:{key}={value}"
            found.append(ctx.finding(seg, type="segment_divergence", subject=subj, predicate=predicate,
                                     object=obj, n=n_s + n_r, effect=diff, p_value=p,
                                     evidence=evidence, reach=seg.completed / max(1, base.completed),
                                     actionable=True, segment=f"{key}={value}"))
        return found


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
