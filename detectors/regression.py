"""Behavioural regressions between snapshots (paper 5.4, 6.2.3), release-anchored ones as soon as decidable.

Release and period comparisons do not wait for their scopes to mature: the edges
are compared over *resolved* steps (snapshot `resolved_transitions`: a step
counts once the drop-off horizon has passed since it was entered, whatever
its destination, so the share going each way is unbiased), and the
conversion outcome over the Aalen–Johansen estimate of P(conversion within
the window) (snapshot `outcome_probabilities`, a Wald z-test of the two
estimates) unless both sides are mature, where the old count test is exact;
the traffic into an edge's source state likewise over the snapshots'
first-entry incidence (`reach_estimates`).
Every finding states its estimator and its test's power: `detectable_change`
is the smallest |ΔP| the comparison detects with 80 % power at
α = detectors.fdr_q (engine.power). `power_map` lists, per release and for the
latest period, every edge's detectable change and status, "too early to tell
(n = …, detectable change ≥ …)" while nothing is significant, so silence in
the feed has a stated meaning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from detectors.context import Context
from detectors.defaults import FDR_Q, RegressionConfig
from detectors.registry import register
from detectors.stats import two_proportion_z
from detectors.view import SnapView
from engine import incidence, power, step_shares
from engine.snapshot_reader import SnapshotReader
from ontology.model import Finding
from ontology.names import edge_id

TOO_EARLY = "too early to tell"


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
    """Transition probabilities and conversion that moved between two snapshots.

    Comparisons: each pair of consecutive period snapshots, and each
    release's release_before/release_after pair, mature or not (version 2:
    edges over resolved steps, conversion over Aalen–Johansen and traffic over
    first-entry incidence when a side is immature, so the latest period is
    compared with the one before as soon as the data decide it; every finding
    states its estimator and power). Per edge a→b
    (b may be an outcome) with ≥ min_n resolved steps out of a on both sides,
    and per conversion outcome, a pooled two-proportion z-test (a Wald test of
    the two incidence estimates for Aalen–Johansen); |ΔP| ≥ min_delta and
    |ΔP|/P_before ≥ min_relative make a candidate. Exactly one release marker
    in the window (for periods: from the earlier window's end to the later
    window's end) → regressed_after release:x; none → changed_after
    snapshot:<earlier>; several → changed_after with attribution "ambiguous"
    and every release listed. The share of journeys entering the edge's source
    state is tested too (traffic_changed), so a traffic-mix shift is reported
    as such and never mistaken for a behaviour change.
    """

    name = "regression"
    version = 2
    config = RegressionConfig
    requires: tuple[str, ...] = ()
    family = "comparison"  # BH family: compares snapshots with each other
    types = ("regression",)

    def run(self, ctx: Context) -> list[Finding]:
        out: list[Finding] = []
        for comp in comparisons(ctx.views, ctx.releases):
            out.extend(self._compare(ctx, comp))
        return out

    def _compare(self, ctx: Context, comp: Comparison) -> list[Finding]:
        cfg: RegressionConfig = ctx.config
        b, a = resolved(comp.before), resolved(comp.after)
        floor = ctx.floor(cfg.min_n)
        found: list[Finding] = []
        sources = sorted(s for s in set(b.states) & set(a.states) if b.out_total(s) >= floor and a.out_total(s) >= floor)
        for src in sources:
            traffic = _traffic(ctx, comp, src)
            dests = sorted({d for (s, d) in b.counts if s == src} | {d for (s, d) in a.counts if s == src})
            for dst in dests:
                cell, test = edge_test(comp.before, comp.after, src, dst)
                found.extend(self._test(ctx, comp, edge_id(src, dst), cell, traffic, _adverse_edge(a, dst), test))
        found.extend(self._outcome(ctx, comp, floor))
        return found

    def _outcome(self, ctx: Context, comp: Comparison, floor: int) -> list[Finding]:
        """Conversion within the window: exact counts when both sides are mature, else Aalen–Johansen once each
        side has a journey followed for a whole window (before that its estimate is "within" a shorter time)."""
        b, a = comp.before, comp.after
        conv = a.conversion
        if b.mature and a.mature:
            if b.completed < floor or a.completed < floor:
                return []
            cell = (b.outcome_count(conv), b.completed, a.outcome_count(conv), a.completed)
            return self._test(ctx, comp, f"outcome:{conv}", cell, (1.0, 1.0, False), None)
        if not (_followed_a_window(b) and _followed_a_window(a)):
            return []  # P(conversion within the window) is not estimable on a side followed for less than a window
        (f1, v1, n1), (f2, v2, n2) = incidence_of(b, conv), incidence_of(a, conv)
        if n1 < floor or n2 < floor:
            return []
        z, p = incidence.two_sample_z(f1, v1, f2, v2)
        return self._test(ctx, comp, f"outcome:{conv}", (f1, n1, f2, n2), (1.0, 1.0, False), None,
                          (z, p, incidence.ESTIMATOR))

    def _test(self, ctx: Context, comp: Comparison, subject: str, cell: tuple[float, int, float, int],
              traffic: tuple[float, float, bool], adverse_if_up: bool | None,
              test: tuple[float, float, str] | None = None) -> list[Finding]:
        """`cell` is (x_before, n_before, x_after, n_after) counts, or with `test` given (probabilities, n)."""
        cfg: RegressionConfig = ctx.config
        x1, n1, x2, n2 = cell
        if test is None:
            z, p = two_proportion_z(int(x2), n2, int(x1), n1)  # z > 0: the probability went up
            p_before, p_after, estimator = x1 / n1, x2 / n2, _edge_estimator(comp)
        else:
            (z, p, estimator), p_before, p_after = test, x1, x2
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
            "before_snapshot": comp.before.snapshot_id, "estimator": estimator,
            **({"traffic_estimator": traffic_estimator(comp.before, comp.after)}  # the reach test behind traffic_*
               if subject.startswith("edge:") and traffic_estimator(comp.before, comp.after) else {}),
            **power_evidence(p_before, n1, p_after, n2),
        }
        if comp.attribution == "release":
            predicate, obj = "regressed_after", f"release:{comp.releases[0]}"
        else:
            predicate, obj = "changed_after", f"snapshot:{comp.before.snapshot_id}"
        return [ctx.finding(comp.after, type="regression", subject=subject, predicate=predicate, object=obj,
                            n=n1 + n2, effect=relative, p_value=p, evidence=evidence, reach=traffic[1],
                            actionable=adverse, release=comp.release)]


def _traffic(ctx: Context, comp: Comparison, src: str) -> tuple[float, float, bool]:
    """Share of journeys reaching the edge's source state, before and after, with its own test.

    Both sides mature: the completed journeys' counts (exact two-proportion test). A side immature but each
    followed for a whole window: the snapshots' first-entry incidence (`reach_estimates`, Aalen–Johansen: open
    journeys count for as long as they were observed) and a Wald test of the two estimates. A side followed for
    less than a window: reach within the window is not estimable there yet, so the counts as before.
    """
    if src == comp.after.start:
        return 1.0, 1.0, False
    before, after, p = traffic_shift(comp.before, comp.after, src)
    ctx.record(f"traffic:{comp.after.snapshot_id}:{src}", p)
    return before, after, bool(p < ctx.config.traffic_alpha)


def edge_test(before: SnapView, after: SnapView, src: str,
              dst: str) -> tuple[tuple[float, int, float, int], tuple[float, float, str] | None]:
    """The cell of edge src→dst and, on a pair not both mature, its test (narrator.recompute_formulas uses it too).

    Both mature: counts (x_before, n_before, x_after, n_after), pooled two-proportion test in `_test`.
    Otherwise the snapshots' `resolved_shares` (engine.step_shares: resolved steps weighted for entry time,
    journey-clustered se) and a z-test of the two shares, each side's variance floored at the pooled binomial
    one: ((p_before, n_before, p_after, n_after), (z, p, estimator)).
    """
    b, a = resolved(before), resolved(after)
    n1, n2 = b.out_total(src), a.out_total(src)
    if (before.mature and after.mature) or "resolved_shares" not in after.payload:
        return (b.count(src, dst), n1, a.count(src, dst), n2), None
    (f1, v1), (f2, v2) = _share_of(b, src, dst), _share_of(a, src, dst)
    # each side's variance is at least the pooled binomial one under H0 (what the count test uses): the Wald
    # variance at an observed share near 0 or 1 is far too small for a rare edge; clustering only adds to it
    pooled = (f1 * n1 + f2 * n2) / (n1 + n2) if n1 + n2 else 0.0
    floor1, floor2 = (pooled * (1 - pooled) / n if n else 0.0 for n in (n1, n2))
    z, p = incidence.two_sample_z(f1, max(v1, floor1), f2, max(v2, floor2))
    return (f1, n1, f2, n2), (z, p, step_shares.ESTIMATOR)


def _share_of(view: SnapView, src: str, dst: str) -> tuple[float, float]:
    return resolved(view).shares.get((src, dst), (0.0, 0.0))


def _followed_a_window(view: SnapshotReader) -> bool:
    """Some journey of the scope was followed for a whole window (older payloads without the field: assumed)."""
    p = view.payload
    return "estimate_horizon_s" not in p or int(p["estimate_horizon_s"]) >= int(p["journey_window_s"])


def traffic_estimator(b: SnapshotReader, a: SnapshotReader) -> str | None:
    """First-entry incidence for the traffic check when a side is immature and both were followed for a whole
    window (`estimate_horizon_s`: else the two reach estimates are "within" different horizons); None: counts."""
    if (b.mature and a.mature) or "reach_estimates" not in a.payload or "reach_estimates" not in b.payload:
        return None
    return "aalen_johansen_first_entry" if _followed_a_window(b) and _followed_a_window(a) else None


def traffic_shift(b: SnapshotReader, a: SnapshotReader, src: str) -> tuple[float, float, float]:
    """(reach before, reach after, two-sided p) of `src` (narrator.recompute_formulas recomputes with it)."""
    if traffic_estimator(b, a) is None:
        _, p = two_proportion_z(a.reach_count(src), a.completed, b.reach_count(src), b.completed)
        return b.reach(src), a.reach(src), p
    (before, v1), (after, v2) = reach_of(b, src), reach_of(a, src)
    return before, after, incidence.two_sample_z(before, v1, after, v2)[1]


def reach_of(view: SnapshotReader, state: str) -> tuple[float, float]:
    """(estimate, variance) of P(state entered within the window) from the snapshot's first-entry incidence."""
    est = (view.payload.get("reach_estimates") or {}).get(state)
    return (0.0, 0.0) if est is None else (float(est["estimate"]), float(est["se"]) ** 2)


def _adverse_edge(view: SnapView, dst: str) -> bool | None:
    """More traffic into the drop-off outcome is bad, less into conversion is bad, else unsigned."""
    if dst == view.dropoff:
        return True
    if dst == view.conversion:
        return False
    return None


def comparisons(views: Sequence[SnapView], releases: Sequence[Any]) -> list[Comparison]:
    """Every pair the detector compares, in a fixed order: consecutive period pairs and release pairs, each as
    soon as decidable (mature, or carrying the resolved-step and incidence estimates)."""
    out: list[Comparison] = []
    periods = sorted((v for v in views if v.scope == "period" and _decidable(v) and not v.segment),
                     key=lambda v: (v.window[0], v.snapshot_id))
    for before, after in zip(periods, periods[1:]):
        inside = _releases_between(releases, before.window[1], after.window[1])
        out.append(_comparison(before, after, inside))
    befores = {v.release: v for v in views if v.scope == "release_before" and _decidable(v) and not v.segment}
    for after in sorted((v for v in views if v.scope == "release_after" and _decidable(v) and not v.segment),
                        key=lambda v: (v.window[0], v.snapshot_id)):
        baseline = befores.get(after.release)
        if baseline is None:
            continue
        inside = _releases_between(releases, baseline.window[0], after.window[1])
        names = tuple(sorted(set(inside) | {str(after.release)}))
        out.append(_comparison(baseline, after, names))
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
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decidable(view: SnapView) -> bool:
    """Mature, or carrying the resolved-step and incidence estimates that make an immature scope comparable."""
    return view.mature or "resolved_transitions" in view.payload


class _ResolvedView(SnapView):
    """A SnapView whose edge counts are the snapshot's resolved steps: `resolved_shares` (every step whose
    destination is final, engine.step_shares), else `resolved_transitions` (older payloads)."""

    @cached_property
    def counts(self) -> dict[tuple[str, str], int]:
        rows = self.payload.get("resolved_shares", self.payload.get("resolved_transitions"))
        if rows is None:
            return super().counts
        return {(t["from"], t["to"]): int(t["count"]) for t in rows}

    @cached_property
    def shares(self) -> dict[tuple[str, str], tuple[float, float]]:
        """(from, to) -> (share, variance) of `resolved_shares` (the first row of an edge, as a scan finds it)."""
        out: dict[tuple[str, str], tuple[float, float]] = {}
        for row in self.payload.get("resolved_shares") or []:
            out.setdefault((row["from"], row["to"]), (float(row["share"]), float(row["se"]) ** 2))
        return out

    @property
    def states(self) -> list[str]:
        """The states with resolved steps out of them (and the start state)."""
        return sorted({self.start} | {src for (src, _) in self.counts})


def resolved(view: SnapView) -> _ResolvedView:
    """The view with resolved-step counts (identical to the completed-journey counts on a mature snapshot)."""
    if isinstance(view, _ResolvedView):
        return view
    # kept on the view: every edge of a comparison asks for it, and its counts and totals are built once
    kept = view.__dict__.get("_resolved_view")
    if kept is None:
        kept = view.__dict__["_resolved_view"] = _ResolvedView(view.snap)
    return kept


def _edge_estimator(comp: Comparison) -> str:
    both_mature = comp.before.mature and comp.after.mature
    return "completed_only" if both_mature else "resolved_steps"


def power_evidence(p_before: float, n1: int, p_after: float, n2: int) -> dict[str, Any]:
    """The test's power, stated on every finding: detectable change at 80 % power, and power at the observed change."""
    return {"detectable_change": _mde(p_before, n1, n2), "detectable_change_alpha": FDR_Q,
            "power": power.power_of(p_before, n1, p_after, n2, FDR_Q), "power_target": power.POWER}


def incidence_of(view: SnapView, outcome: str) -> tuple[float, float, int]:
    """(estimate, variance, journeys) of P(outcome within the window) from the snapshot's Aalen–Johansen numbers."""
    est = view.payload.get("outcome_probabilities", {}).get(outcome)
    seen = view.payload.get("observation") or {}
    n = int(sum(seen.values())) if seen else view.completed
    if est is None:
        return 0.0, 0.0, 0
    return float(est["estimate"]), float(est["se"]) ** 2, n


def _mde(p_before: float, n1: int, n2: int, alpha: float = FDR_Q) -> float | None:
    value = float(power.minimum_detectable_change(p_before, n1, n2, alpha)[0])
    return None if math.isnan(value) else value


def power_map(views: Sequence[SnapView], releases: Sequence[Any], alpha: float = FDR_Q, min_n: int = 1,
              reported: Sequence[Finding] = ()) -> list[dict[str, Any]]:
    """Per release comparison and for the latest period against the one before: every edge's detectable change.

    One row per (comparison, edge): n before/after (resolved steps out of the source), p before/after, the
    smallest |ΔP| detectable with 80 % power at `alpha`, and a status: "regression reported" when a finding
    in `reported` covers it, else "too early to tell (n = …, detectable change ≥ …)" below `min_n` or when
    the detectable change is above 0.5, else "no change detected (detectable change ≥ …)".
    """
    found = {(f.snapshot_id, f.subject) for f in reported}
    rows: list[dict[str, Any]] = []
    for label, comp in _power_comparisons(views, releases):
        b, a = resolved(comp.before), resolved(comp.after)  # once per comparison: their counts are cached
        targets: dict[str, set[str]] = {}
        for src, dst in [*b.counts, *a.counts]:
            targets.setdefault(src, set()).add(dst)
        edges = [(src, dst) for src in sorted(set(b.states) & set(a.states)) for dst in sorted(targets.get(src, ()))]
        mdes = _edge_mdes(b, a, edges, alpha)  # one vectorised solve: per-edge calls cost 30 s at 5,000 states
        rows.extend(_power_row(label, comp, b, a, edge, mde, alpha, min_n, found) for edge, mde in zip(edges, mdes))
    return rows


def _edge_mdes(b: SnapView, a: SnapView, edges: list[tuple[str, str]], alpha: float) -> list[float | None]:
    """`_mde` of every edge with moves out of its source on both sides (None elsewhere), in one call."""
    ok = [i for i, (src, _) in enumerate(edges) if b.out_total(src) and a.out_total(src)]
    out: list[float | None] = [None] * len(edges)
    if ok:
        p1 = [b.count(*edges[i]) / b.out_total(edges[i][0]) for i in ok]
        n1 = [b.out_total(edges[i][0]) for i in ok]
        n2 = [a.out_total(edges[i][0]) for i in ok]
        for i, value in zip(ok, power.minimum_detectable_change(p1, n1, n2, alpha)):
            out[i] = None if math.isnan(value) else float(value)
    return out


def _power_row(label: str, comp: Comparison, b: SnapView, a: SnapView, edge: tuple[str, str], mde: float | None,
               alpha: float, min_n: int, found: set[tuple[str, str]]) -> dict[str, Any]:
    src, dst = edge
    n1, n2 = b.out_total(src), a.out_total(src)
    p1 = b.count(src, dst) / n1 if n1 else None
    p2 = a.count(src, dst) / n2 if n2 else None
    subject = edge_id(src, dst)
    if (comp.after.snapshot_id, subject) in found:
        status = "regression reported"
    elif mde is None or min(n1, n2) < min_n or mde > 0.5:
        shown = "n/a" if mde is None else f"{mde:.3f}"
        status = f"{TOO_EARLY} (n = {n1} before, {n2} after; detectable change >= {shown})"
    else:
        status = f"no change detected (detectable change >= {mde:.3f})"
    return {"comparison": label, "edge": subject, "n_before": n1, "n_after": n2,
            "p_before": None if p1 is None else round(p1, 6), "p_after": None if p2 is None else round(p2, 6),
            "detectable_change": None if mde is None else round(mde, 6), "alpha": alpha, "power": power.POWER,
            "estimator": _edge_estimator(comp), "status": status}


def _power_comparisons(views: Sequence[SnapView], releases: Sequence[Any]) -> list[tuple[str, Comparison]]:
    """Each release pair, and the latest period against the one before (whether mature or not)."""
    out = [(f"release:{c.releases[-1] if c.attribution != 'release' else c.release}", c)
           for c in comparisons(views, releases) if c.after.scope == "release_after"]
    periods = sorted((v for v in views if v.scope == "period" and not v.segment and _decidable(v)),
                     key=lambda v: (v.window[0], v.snapshot_id))
    if len(periods) >= 2:
        before, after = periods[-2], periods[-1]
        out.append((f"period:{after.window[0]}", _comparison(before, after, ())))
    return out


def power_map_for(snapshots: Sequence[Any], cfg: Any, findings: Sequence[Finding] = ()) -> list[dict[str, Any]]:
    """`power_map` of every (tenant, journey) with the run's settings, for the feed footer, the API and the page.

    α is `detectors.fdr_q` (BH's level: the per-test bar is between q/m and q, so the detectable change
    shown is the optimistic end); the n floor is the regression's `min_n` and the privacy minimum group.
    """
    from detectors.registry import settings_for

    alpha = float(dict(cfg.detectors).get("fdr_q", FDR_Q))
    conf = settings_for(Regression, cfg.detector_settings("regression"))
    floor = max(int(conf.min_n), int(cfg.privacy.min_group_size))
    groups: dict[tuple[str, str], list[SnapView]] = {}
    for snap in snapshots:
        view = SnapView(snap)
        groups.setdefault((str(view.payload.get("tenant_id") or ""), view.journey), []).append(view)
    rows: list[dict[str, Any]] = []
    for (tenant, journey), views in sorted(groups.items()):
        reported = [f for f in findings if f.type == "regression" and f.journey == journey]
        rows.extend({"tenant_id": tenant, "journey": journey, **row}
                    for row in power_map(views, cfg.releases, alpha, floor, reported))
    return rows
