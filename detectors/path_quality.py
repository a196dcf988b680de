"""Path quality (paper 6.2.6): fast paths to conversion and frequent slow ones."""

from __future__ import annotations

from dataclasses import dataclass

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
    states: tuple[str, ...]
    count: int
    actors: int
    conversions: int
    duration_s: float
    length: float

    @property
    def conversion_rate(self) -> float:
        return self.conversions / self.count if self.count else 0.0


@register
class PathQuality:
    """Frequent paths that reach conversion unusually fast and short, or unusually slowly.

    Q = conversion_rate / ((duration / median duration) × (length / median length)),
    both medians from the snapshot, so Q is dimensionless; quality = Q divided by
    the snapshot's conversion rate (1.0 = a path at median duration and length
    converting at the baseline rate). Only paths with ≥ min_count journeys and
    ≥ min_share of them are judged. quality ≥ fast_quality with a higher
    conversion rate than the rest → is_fast_path_to; share ≥ slow_min_share and
    quality ≤ slow_quality → associated_with (kind slow_path). Test for both:
    the path's conversion vs all other completed journeys (two-proportion z, or
    Fisher when small).
    """

    name = "path_quality"
    version = 1
    config = PathQualityConfig
    requires = ()
    family = "structure"  # BH family: one snapshot's own structure
    types = ("fast_path", "slow_path")

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: PathQualityConfig = ctx.config
        durations = view.payload.get("durations") or {}
        med_d = float(durations.get("median_s") or 0.0)
        med_l = float(durations.get("median_length") or 0.0)
        base_cr = view.outcome_count(view.conversion) / max(1, view.completed)
        if med_d <= 0 or med_l <= 0 or base_cr <= 0:
            return []
        found = []
        for path in _paths(view):
            if path.count < ctx.floor(cfg.min_count) or path.count / view.completed < cfg.min_share:
                continue
            rest_conv = view.outcome_count(view.conversion) - path.conversions
            z, p, test = proportion_test(path.conversions, path.count, rest_conv, view.completed - path.count)
            ratio = max(path.duration_s / med_d, MIN_RATIO) * max(path.length / med_l, MIN_RATIO)
            quality = path.conversion_rate / ratio / base_cr
            share = path.count / view.completed
            if quality >= cfg.fast_quality and z > 0:
                found.append(self._finding(ctx, view, path, quality, p, test, fast=True))
            elif quality <= cfg.slow_quality and share >= cfg.slow_min_share:
                found.append(self._finding(ctx, view, path, quality, p, test, fast=False))
            else:
                ctx.record(f"path:{view.snapshot_id}:{'>'.join(path.states)}", p)
        return found

    def _finding(self, ctx: Context, view: SnapView, path: _Path, quality: float, p: float, test: str,
                 fast: bool) -> Finding:
        share = path.count / view.completed
        evidence = {
            "count": path.count, "share": share, "conversion_rate": path.conversion_rate,
            "median_duration_s": path.duration_s, "median_length": path.length, "quality": quality, "test": test,
        }
        subject = path_id(path.states)
        reach = path.actors / max(1, view.actors)
        if fast:
            return ctx.finding(view, type="fast_path", subject=subject, predicate="is_fast_path_to",
                               object=f"outcome:{view.conversion}", n=view.completed, effect=quality - 1.0,
                               p_value=p, evidence=evidence, reach=reach, actionable=True)
        evidence = {"kind": "slow_path", **evidence}
        return ctx.finding(view, type="slow_path", subject=subject, predicate="associated_with",
                           object=f"journey:{view.journey}", n=view.completed, effect=1.0 - quality,
                           p_value=p, evidence=evidence, reach=reach, actionable=True)


def _paths(view: SnapView) -> list[_Path]:
    """Top paths merged by state sequence (entries may be split by outcome), in a fixed order."""
    merged: dict[tuple[str, ...], list[float]] = {}
    for entry in (view.payload.get("paths") or {}).get("top", []):
        key = tuple(entry["path"])
        count = int(entry["count"])
        conv = entry.get("conversion_rate")
        if conv is None:
            conv = 1.0 if entry.get("outcome") == view.conversion else 0.0
        acc = merged.setdefault(key, [0, 0, 0.0, 0.0, 0.0])
        acc[0] += count
        acc[1] += int(entry.get("actors", count))
        acc[2] += float(conv) * count
        acc[3] += float(entry.get("median_duration_s") or 0.0) * count
        acc[4] += float(entry.get("median_length") or len(key)) * count
    return [_Path(k, int(a[0]), int(a[1]), int(round(a[2])), a[3] / a[0], a[4] / a[0])
            for k, a in sorted(merged.items()) if a[0] > 0]
