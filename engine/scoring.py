"""Composite interestingness score (paper 5.5), reproducing Table 1 exactly.

score = α·significance + β·magnitude + γ·reach + ω·actionability + ε·novelty

- significance = (1 − p)·min(1, log(n/100) / log 10), clipped to [0, 1]:
  a p-value is only worth its full weight with ≥ 1000 observations.
- magnitude = |effect| clipped to [0, 1]; detectors store the paper's effect
  in Finding.effect: lift − 1 for conversion findings, ΔP / P_{t−1} for
  regressions, the reach or conversion difference for segments, and so on.
- reach = Finding.reach, the share of actors the finding touches.
- actionability = 1 when the detector marked the finding actionable, else 0.
- novelty = exp(−0.3·(seen − 1)), `seen` = how many period snapshots (this
  one included) already held the same finding key; a new finding scores 1.

Weights come from `Config.weight_map` (scoring.weights in journeygraph.yaml).
"""

from __future__ import annotations

import math
from typing import Any, Mapping

COMPONENTS = ("significance", "magnitude", "reach", "actionability", "novelty")
NOVELTY_DECAY = 0.3
FULL_WEIGHT_N = 1000  # n at which significance stops being penalised (log10(n/100) = 1)


def _clip(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def significance(p_value: float, n: int) -> float:
    if n <= 0:
        return 0.0
    return _clip((1.0 - float(p_value)) * min(1.0, math.log(n / 100.0) / math.log(10.0)))


def magnitude(effect: float) -> float:
    return _clip(abs(float(effect)))


def novelty(seen: int) -> float:
    return _clip(math.exp(-NOVELTY_DECAY * (max(1, int(seen)) - 1)))


def components(*, p_value: float, n: int, effect: float, reach: float, actionable: bool, seen: int) -> dict[str, float]:
    return {
        "significance": significance(p_value, n),
        "magnitude": magnitude(effect),
        "reach": _clip(reach),
        "actionability": 1.0 if actionable else 0.0,
        "novelty": novelty(seen),
    }


def combine(parts: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of the components; an unknown weight name is refused."""
    unknown = set(weights) - set(COMPONENTS)
    if unknown:
        raise ValueError(f"unknown scoring weight(s) {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
    return sum(float(weights.get(k, 0.0)) * parts[k] for k in COMPONENTS)


def score_finding(finding: Any, seen: int, weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """(score, components) of one finding seen in `seen` snapshots."""
    parts = components(p_value=finding.p_value, n=finding.n, effect=finding.effect, reach=finding.reach,
                       actionable=finding.actionable, seen=seen)
    return combine(parts, weights), parts
