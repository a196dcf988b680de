"""Outcome-rate facts: how often each outcome happens, per journey, segment value, period and release side.

The questions analysts ask first ("what is the conversion rate?", "what is the
conversion rate of android users?", "did conversion change after v2.3?") need a
rate with its n and an interval. For every mature snapshot and every outcome
this states `has_outcome_rate`: count of completed journeys ending in the
outcome, n completed journeys, the rate and a 95% Wilson score interval. The
subject names the scope: `journey:<j>` (all data, or a period through the
fact's validity window), `segment:<key>=<value>`, or `release:<r>` with
`side` before/after. Immature snapshots (censored journeys still open) are
skipped: their rates would be biased. Privacy: n and a non-zero count must
reach privacy.min_group_size.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from detectors.confidence import ConfidenceModel
from detectors.stats import r6
from detectors.view import SnapView
from ontology.model import Fact, Provenance

RATE_DETECTOR = "outcome_rate@1"
LEVEL = 0.95
_Z95 = 1.959963984540054  # standard normal quantile 0.975


def wilson_interval(count: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion count/n (Wilson 1927); (0, 1) when n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = count / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if count == 0 else max(0.0, centre - half)  # exact at the bounds, free of rounding residue
    high = 1.0 if count == n else min(1.0, centre + half)
    return low, high


def _subject(view: SnapView) -> str | None:
    if view.scope in ("all", "period"):
        return f"journey:{view.journey}"
    if view.scope == "segment" and view.segment is not None:
        return f"segment:{view.segment[0]}={view.segment[1]}"
    if view.scope in ("release_before", "release_after") and view.release:
        return f"release:{view.release}"
    return None


def scope_evidence(view: SnapView) -> dict[str, Any]:
    ev: dict[str, Any] = {"journey": view.journey, "scope": view.scope}
    if view.segment is not None:
        ev["segment"] = f"{view.segment[0]}={view.segment[1]}"
    if view.release:
        ev["release"] = view.release
        ev["side"] = "before" if view.scope == "release_before" else "after"
    return ev


def rate_evidence(view: SnapView, outcome: str) -> dict[str, Any]:
    """The evidence of one has_outcome_rate fact, unrounded (trace recomputes it with this same function)."""
    count, n = view.outcome_count(outcome), view.completed
    low, high = wilson_interval(count, n)
    return {**scope_evidence(view), "outcome": outcome, "count": count, "n": n, "rate": count / n if n else 0.0,
            "ci_low": low, "ci_high": high, "level": LEVEL, "interval": "wilson",
            "is_conversion": outcome == view.conversion}


def rate_facts(views: Sequence[SnapView], cfg: Any, model: ConfidenceModel,
               engine_version: Callable[[SnapView], str]) -> list[Fact]:
    """has_outcome_rate for every mature snapshot × outcome (see the module docstring)."""
    min_group = int(cfg.privacy.min_group_size)
    out = []
    for view in views:
        subject = _subject(view)
        n = view.completed
        if subject is None or not view.mature or n < min_group:
            continue
        prov = Provenance(view.snapshot_id, RATE_DETECTOR, cfg.config_hash, engine_version(view))
        for outcome in sorted(view.payload.get("outcomes", [])):
            count = view.outcome_count(outcome)
            if 0 < count < min_group:
                continue
            ev = {key: r6(v) if isinstance(v, float) else v
                  for key, v in rate_evidence(view, outcome).items()}
            conf = model.score(0.0, n, min_group, 0.0)
            out.append(Fact(subject, "has_outcome_rate", f"outcome:{outcome}", conf, view.window[0],
                            view.window[1], ev, prov))
    return out

