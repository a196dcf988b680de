"""Path quality (paper 6.2.6): fast paths to conversion and frequent slow ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from detectors import segment_estimates as seg_est
from detectors.context import Context
from detectors.defaults import PathQualityConfig
from detectors.registry import register
from detectors.stats import proportion_test
from detectors.view import SnapView
from ontology.model import Finding
from ontology.names import path_id

MIN_RATIO = 0.1  # duration and length ratios are floored so an instant path cannot divide by zero
ESTIMATOR = "ipcw"  # engine.path_estimate_totals (engine.ipcw weights)
WALD = "wald_z"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Path:
    """One shown (sequence, outcome) entry with its whole sequence's totals."""

    states: tuple[str, ...]
    outcome: str
    count: int           # journeys on the sequence, every outcome
    conversions: int     # of them converted
    duration_s: float    # median over the entry's journeys (one outcome)
    length: float

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.count if self.count else 0.0


@dataclass(frozen=True)
class _Estimated:
    """One shown (sequence, outcome) entry of `path_estimates`: its sequence's IPCW totals (journeys still in
    progress counted) against the rest of the scope, and the entry's IPCW medians."""

    states: tuple[str, ...]
    outcome: str
    share: float         # the sequence's estimated share of the scope's journeys, every outcome
    share_se: float
    path: seg_est.Side   # its conversion rate, variance, Kish effective n, resolved journeys
    rest: seg_est.Side   # every other resolved journey of the scope
    duration_s: float
    length: float


@register
class PathQuality:
    """Frequent paths that reach conversion unusually fast and short, or that are slow and convert less.

    Only paths of at least two states, with ≥ min_count journeys and ≥ min_share
    of them, are judged, and each is timed against journeys that end in the same
    outcome class (converted, or lost: any other outcome), so a quick automatic
    rejection is never "slow" and a lost journey is never "fast". time_ratio =
    (duration / class median duration) × (length / class median length), from
    the entry's own journeys; Q = conversion rate of the whole sequence (all its
    outcomes, shown or not) / time_ratio / the snapshot's conversion rate.
    Converted entries with Q ≥ fast_quality, time_ratio < 1 (quicker than the
    median converting journey) and a higher conversion rate than the rest →
    is_fast_path_to. Entries with share ≥ slow_min_share, 1 / time_ratio ≤
    slow_quality and a lower conversion rate than the rest → associated_with (kind
    slow_path). Test for both: the sequence's conversion vs all other completed
    journeys (two-proportion z, or Fisher when small).

    Once the scope has censored journeys (open at the data end, or within a window of it), every number comes
    from the snapshot's `path_estimates` instead (engine.path_estimate_totals: IPCW over the journeys whose end
    is known, so journeys still in progress count): the sequence's estimated share and conversion rate against
    the rest's, Kish effective sizes for min_count and the evidence's count / n_rest, the entry's and the class
    medians from the IPCW Kaplan–Meier curve, and a Wald z with each variance floored at the pooled binomial
    at its effective n. A scope with no journey followed for a whole window gives no path finding (not
    estimable yet). With nothing censored the completed-only counts above are used, unchanged.
    """

    name = "path_quality"
    version = 2
    config = PathQualityConfig
    requires = ()
    family = "structure"  # BH family: one snapshot's own structure
    types = ("fast_path", "slow_path")

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: PathQualityConfig = ctx.config
        note = (view.payload.get("path_estimates") or {}).get("note") if uses_estimates(view) else None
        if note:  # positivity: no sequence's conversion can be told before a journey has been followed that long
            log.info("path_quality: snapshot %s has no path finding: %s", view.snapshot_id, note)
            return []
        found = []
        for path in paths_of(view):
            ev = path_evidence(view, path)
            if (ev is None or len(path.states) < 2 or ev["count"] < ctx.floor(cfg.min_count)
                    or ev["share"] < cfg.min_share):
                continue
            z, p = ev.pop("z"), ev.pop("p_value")
            if ev["outcome_class"] == "converted" and ev["quality"] >= cfg.fast_quality and ev["time_ratio"] < 1 and z > 0:
                found.append(self._finding(ctx, view, path, ev, p, fast=True))
            elif ev["share"] >= cfg.slow_min_share and 1.0 / ev["time_ratio"] <= cfg.slow_quality and z < 0:
                found.append(self._finding(ctx, view, path, ev, p, fast=False))
            else:
                ctx.record(f"path:{view.snapshot_id}:{path.outcome}:{'>'.join(path.states)}", p)
        return found

    def _finding(self, ctx: Context, view: SnapView, path: _Path | _Estimated, ev: dict[str, Any], p: float,
                 fast: bool) -> Finding:
        subject = path_id(path.states)
        n = int(ev.pop("n"))
        if fast:
            return ctx.finding(view, type="fast_path", subject=subject, predicate="is_fast_path_to",
                               object=f"outcome:{view.conversion}", n=n, effect=ev["quality"] - 1.0,
                               p_value=p, evidence=ev, reach=ev["share"], actionable=True)
        evidence = {"kind": "slow_path", **ev}
        return ctx.finding(view, type="slow_path", subject=subject, predicate="associated_with",
                           object=f"journey:{view.journey}", n=n, effect=1.0 - 1.0 / ev["time_ratio"],
                           p_value=p, evidence=evidence, reach=ev["share"], actionable=True)


def uses_estimates(view: SnapView) -> bool:
    """In-progress estimates when the scope has censored journeys and its snapshot carries the sequence totals;
    with nothing censored the completed-only counts are the same numbers, exactly."""
    block = view.payload.get("path_estimates") or {}
    return int(view.payload.get("censored") or 0) > 0 and ("conversion_rate" in block or "note" in block)


def path_evidence(view: SnapView, path: _Path | _Estimated) -> dict[str, Any] | None:
    """Every number of a path finding (narrator.recompute_formulas recomputes with it); None if unmeasurable."""
    if isinstance(path, _Estimated):
        return _estimated_evidence(view, path)
    med = class_medians(view, path.outcome)
    base_cr = view.outcome_count(view.conversion) / max(1, view.completed)
    if med is None or base_cr <= 0 or path.count <= 0:
        return None
    rest_conv = view.outcome_count(view.conversion) - path.conversions
    z, p, test = proportion_test(path.conversions, path.count, rest_conv, view.completed - path.count)
    ratio = max(path.duration_s / med[0], MIN_RATIO) * max(path.length / med[1], MIN_RATIO)
    return {
        "count": path.count, "share": path.count / view.completed, "conversion_rate": path.conversion_rate,
        "median_duration_s": path.duration_s, "median_length": path.length,
        "quality": path.conversion_rate / ratio / base_cr, "test": test, "outcome": path.outcome,
        "outcome_class": _class(view, path.outcome), "time_ratio": ratio, "class_median_duration_s": med[0],
        "class_median_length": med[1], "z": z, "p_value": p, "n": view.completed,
    }


def _estimated_evidence(view: SnapView, path: _Estimated) -> dict[str, Any] | None:
    """The same numbers from the IPCW estimates: sizes are effective (Kish), the test a Wald z of the sequence's
    conversion rate against the rest's, each variance floored at the pooled binomial at its effective n."""
    block = view.payload.get("path_estimates") or {}
    med = class_medians(view, path.outcome)
    base_cr = float(block.get("conversion_rate") or 0.0)
    if med is None or base_cr <= 0 or path.path.n_eff <= 0 or path.rest.n_eff <= 0:
        return None
    c = seg_est.compare(path.path, path.rest)
    ratio = max(path.duration_s / med[0], MIN_RATIO) * max(path.length / med[1], MIN_RATIO)
    journeys, resolved, complete = (int(block.get(k) or 0) for k in ("journeys", "resolved", "complete"))
    return {
        "count": round(path.path.n_eff), "share": path.share, "conversion_rate": path.path.estimate,
        "median_duration_s": path.duration_s, "median_length": path.length,
        "quality": path.path.estimate / ratio / base_cr, "test": WALD, "outcome": path.outcome,
        "outcome_class": _class(view, path.outcome), "time_ratio": ratio, "class_median_duration_s": med[0],
        "class_median_length": med[1], "z": c.z, "p_value": c.p_value,
        "n": round(path.path.n_eff) + round(path.rest.n_eff), "estimator": ESTIMATOR, "n_rest": round(path.rest.n_eff),
        "n_eff": path.path.n_eff, "n_eff_rest": path.rest.n_eff,
        "rest_conversion_rate": path.rest.estimate, "se_path": path.path.variance ** 0.5,
        "se_rest": path.rest.variance ** 0.5, "share_se": path.share_se, "baseline": base_cr,
        "resolved_path": path.path.journeys, "journeys": journeys, "complete": complete,
        "resolved_in_progress": resolved - complete, "unresolved": journeys - resolved,
    }


def _class(view: SnapView, outcome: str) -> str:
    return "converted" if outcome == view.conversion else "lost"


def class_medians(view: SnapView, outcome: str) -> tuple[float, float] | None:
    """(median duration, median length) of the snapshot's journeys in the outcome's class (the IPCW medians of
    `duration_estimates` once journeys are in progress); None if unknown."""
    durations = view.payload.get("duration_estimates" if uses_estimates(view) else "durations") or {}
    block = (durations.get("by_class") or {}).get(_class(view, outcome)) or {}
    med_d, med_l = float(block.get("median_s") or 0.0), float(block.get("median_length") or 0.0)
    return (med_d, med_l) if med_d > 0 and med_l > 0 else None


def paths_of(view: SnapView) -> list[_Path] | list[_Estimated]:
    """Every shown (sequence, outcome) entry, with its sequence's totals over all its outcomes, in a fixed order
    (from `path_estimates` when journeys are in progress: `uses_estimates`).

    The totals come from the entry (`sequence_count`, `sequence_conversions`); a payload without
    them (older snapshots) falls back to the shown entries of the sequence.
    """
    if uses_estimates(view):
        return _estimated_paths(view)
    entries = (view.payload.get("paths") or {}).get("top", [])
    shown: dict[tuple[str, ...], list[int]] = {}
    for e in entries:
        acc = shown.setdefault(tuple(e["path"]), [0, 0])
        acc[0] += int(e["count"])
        acc[1] += int(e["count"]) if e.get("outcome") == view.conversion else 0
    out = []
    for e in entries:
        key = tuple(e["path"])
        count = int(e.get("sequence_count", shown[key][0]))
        conversions = int(e.get("sequence_conversions", shown[key][1]))
        out.append(_Path(key, str(e.get("outcome")), count, conversions, float(e.get("median_duration_s") or 0.0),
                         float(e.get("median_length") or len(key))))
    return sorted(out, key=lambda x: (x.states, x.outcome))


def _estimated_paths(view: SnapView) -> list[_Estimated]:
    block = view.payload.get("path_estimates") or {}
    resolved = int(block.get("resolved") or 0)
    out = []
    for e in block.get("top") or []:
        key = tuple(e["path"])
        mine = int(e["sequence_resolved"])
        out.append(_Estimated(
            key, str(e["outcome"]), float(e["sequence_share"]), float(e["sequence_share_se"]),
            seg_est.Side(float(e["conversion_rate"]), float(e["conversion_se"]) ** 2, float(e["sequence_n_eff"]), mine),
            seg_est.Side(float(e["rest_conversion_rate"]), float(e["rest_conversion_se"]) ** 2, float(e["rest_n_eff"]),
                         resolved - mine),
            float(e.get("median_duration_s") or 0.0), float(e.get("median_length") or len(key))))
    return sorted(out, key=lambda x: (x.states, x.outcome))
