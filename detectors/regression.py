"""Behavioural regressions between mature snapshots (paper 5.4, 6.2.3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

from detectors.context import Context
from detectors.defaults import RegressionConfig
from detectors.registry import register
from detectors.stats import two_proportion_z
from detectors.view import SnapView
from ontology.model import Finding
from ontology.names import edge_id


@dataclass(frozen=True)
class Comparison:
    before: SnapView
    after: SnapView
    attribution: str          # "release" | "ambiguous" | "period"
    releases: tuple[str, ...]  # every release marker inside the comparison window

    @property
    def release(self) -> str | None:
        return self.releases[0] if self.attribution == "release" else None


@register
class Regression:
    """Transition probabilities and conversion that moved between two mature snapshots.

    Comparisons: each pair of consecutive mature period snapshots, and each
    release's release_before/release_after pair. Per edge a→b (b may be an
    outcome) with ≥ min_n transitions out of a on both sides, and per
    conversion outcome, a pooled two-proportion z-test; |ΔP| ≥ min_delta and
    |ΔP|/P_before ≥ min_relative make a candidate. Exactly one release marker
    in the window (for periods: from the earlier window's end to the later
    window's end) → regressed_after release:x; none → changed_after
    snapshot:<earlier>; several → changed_after with attribution "ambiguous"
    and every release listed. The share of journeys entering the edge's source
    state is tested too (traffic_changed), so a traffic-mix shift is reported
    as such and never mistaken for a behaviour change.
    """

    name = "regression"
    version = 1
    config = RegressionConfig
    requires = ()
    family = "comparison"  # BH family: compares snapshots with each other
    types = ("regression",)

    def run(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        for comp in comparisons(ctx.views, ctx.releases):
            out.extend(self._compare(ctx, comp))
        return out

    def _compare(self, ctx: Context, comp: Comparison) -> list[Finding]:
        cfg: RegressionConfig = ctx.config
        b, a = comp.before, comp.after
        floor = ctx.floor(cfg.min_n)
        found: list[Finding] = []
        sources = sorted(s for s in set(b.states) & set(a.states) if b.out_total(s) >= floor and a.out_total(s) >= floor)
        for src in sources:
            traffic = _traffic(ctx, comp, src)
            dests = sorted({d for (s, d) in b.counts if s == src} | {d for (s, d) in a.counts if s == src})
            for dst in dests:
                cell = (b.count(src, dst), b.out_total(src), a.count(src, dst), a.out_total(src))
                found.extend(self._test(ctx, comp, edge_id(src, dst), cell, traffic, _adverse_edge(a, dst)))
        if b.completed >= floor and a.completed >= floor:
            conv = a.conversion
            cell = (b.outcome_count(conv), b.completed, a.outcome_count(conv), a.completed)
            found.extend(self._test(ctx, comp, f"outcome:{conv}", cell, (1.0, 1.0, False), None))
        return found

    def _test(self, ctx: Context, comp: Comparison, subject: str, cell: tuple[int, int, int, int],
              traffic: tuple[float, float, bool], adverse_if_up: bool | None) -> list[Finding]:
        cfg: RegressionConfig = ctx.config
        x1, n1, x2, n2 = cell
        z, p = two_proportion_z(x2, n2, x1, n1)  # z > 0: the probability went up
        p_before, p_after = x1 / n1, x2 / n2
        delta = p_after - p_before
        relative = delta / p_before if p_before > 0 else (1.0 if delta > 0 else 0.0)
        if abs(delta) < cfg.min_delta or abs(relative) < cfg.min_relative:
            ctx.record(f"delta:{comp.after.snapshot_id}:{subject}", p)
            return []
        adverse = (delta < 0) if adverse_if_up is None else (delta > 0) == adverse_if_up
        evidence = {
            "p_before": p_before, "p_after": p_after, "n_before": n1, "n_after": n2, "delta": delta,
            "relative_change": relative, "z": z, "traffic_before": traffic[0], "traffic_after": traffic[1],
            "traffic_changed": traffic[2], "attribution": comp.attribution, "releases": list(comp.releases),
            "before_snapshot": comp.before.snapshot_id,
        }
        if comp.attribution == "release":
            predicate, obj = "regressed_after", f"release:{comp.releases[0]}"
        else:
            predicate, obj = "changed_after", f"snapshot:{comp.before.snapshot_id}"
        return [ctx.finding(comp.after, type="regression", subject=subject, predicate=predicate, object=obj,
                            n=n1 + n2, effect=relative, p_value=p, evidence=evidence, reach=traffic[1],
                            actionable=adverse, release=comp.release)]


def _traffic(ctx: Context, comp: Comparison, src: str) -> tuple[float, float, bool]:
    """Share of journeys reaching the edge's source state, before and after, with its own test."""
    b, a = comp.before, comp.after
    if src == a.start:
        return 1.0, 1.0, False
    _, p = two_proportion_z(a.reach_count(src), a.completed, b.reach_count(src), b.completed)
    ctx.record(f"traffic:{a.snapshot_id}:{src}", p)
    return b.reach(src), a.reach(src), bool(p < ctx.config.traffic_alpha)


def _adverse_edge(view: SnapView, dst: str) -> bool | None:
    """More traffic into the drop-off outcome is bad, less into conversion is bad, else unsigned."""
    if dst == view.dropoff:
        return True
    if dst == view.conversion:
        return False
    return None


def comparisons(views: Sequence[SnapView], releases: Sequence[Any]) -> list[Comparison]:
    """Every pair the detector compares, mature snapshots only, in a fixed order."""
    out: list[Comparison] = []
    periods = sorted((v for v in views if v.scope == "period" and v.mature and not v.segment),
                     key=lambda v: (v.window[0], v.snapshot_id))
    for before, after in zip(periods, periods[1:]):
        inside = _releases_between(releases, before.window[1], after.window[1])
        out.append(_comparison(before, after, inside))
    befores = {v.release: v for v in views if v.scope == "release_before" and v.mature and not v.segment}
    for after in sorted((v for v in views if v.scope == "release_after" and v.mature and not v.segment),
                        key=lambda v: (v.window[0], v.snapshot_id)):
        before = befores.get(after.release)
        if before is None:
            continue
        inside = _releases_between(releases, before.window[0], after.window[1])
        names = tuple(sorted(set(inside) | {str(after.release)}))
        out.append(_comparison(before, after, names))
    return out


def _comparison(before: SnapView, after: SnapView, inside: Sequence[str]) -> Comparison:
    names = tuple(inside)
    attribution = "period" if not names else "release" if len(names) == 1 else "ambiguous"
    return Comparison(before, after, attribution, names)


def _releases_between(releases: Sequence[Any], start: str, end: str) -> tuple[str, ...]:
    lo, hi = _ts(start), _ts(end)
    return tuple(r.name for r in releases if lo <= _ts(r.at) < hi)


def _ts(text: str) -> datetime:
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
