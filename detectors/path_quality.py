"""Path quality (paper 6.2.6): fast paths to conversion and frequent slow ones."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detectors.context import Context
from detectors.defaults import PathQualityConfig
from detectors.registry import register
from detectors.stats import proportion_test
from detectors.view import SnapView
from ontology.model import Finding
from ontology.names import path_id

MIN_RATIO = 0.1  # duration and length ratios are floored so an instant path cannot divide by zero


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
        found = []
        for path in paths_of(view):
            ev = path_evidence(view, path)
            if (ev is None or len(path.states) < 2 or path.count < ctx.floor(cfg.min_count)
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

    def _finding(self, ctx: Context, view: SnapView, path: _Path, ev: dict[str, Any], p: float, fast: bool) -> Finding:
        subject = path_id(path.states)
        ev.pop("n")
        if fast:
            return ctx.finding(view, type="fast_path", subject=subject, predicate="is_fast_path_to",
                               object=f"outcome:{view.conversion}", n=view.completed, effect=ev["quality"] - 1.0,
                               p_value=p, evidence=ev, reach=ev["share"], actionable=True)
        evidence = {"kind": "slow_path", **ev}
        return ctx.finding(view, type="slow_path", subject=subject, predicate="associated_with",
                           object=f"journey:{view.journey}", n=view.completed, effect=1.0 - 1.0 / ev["time_ratio"],
                           p_value=p, evidence=evidence, reach=ev["share"], actionable=True)


def path_evidence(view: SnapView, path: _Path) -> dict[str, Any] | None:
    """Every number of a path finding (narrator.recompute_formulas recomputes with it); None if unmeasurable."""
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


def _class(view: SnapView, outcome: str) -> str:
    return "converted" if outcome == view.conversion else "lost"


def class_medians(view: SnapView, outcome: str) -> tuple[float, float] | None:
    """(median duration, median length) of the snapshot's journeys in the outcome's class; None if unknown."""
    durations = view.payload.get("durations") or {}
    block = (durations.get("by_class") or {}).get(_class(view, outcome)) or {}
    med_d, med_l = float(block.get("median_s") or 0.0), float(block.get("median_length") or 0.0)
    return (med_d, med_l) if med_d > 0 and med_l > 0 else None


def paths_of(view: SnapView) -> list[_Path]:
    """Every shown (sequence, outcome) entry, with its sequence's totals over all its outcomes, in a fixed order.

    The totals come from the entry (`sequence_count`, `sequence_conversions`); a payload without
    them (older snapshots) falls back to the shown entries of the sequence.
    """
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
