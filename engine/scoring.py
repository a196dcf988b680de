"""Composite interestingness score (paper 5.5), ranked by what is at stake.

score = α·significance + β·magnitude + γ·reach + ω·actionability + ε·novelty

- significance = (1 − p)·min(1, log(n/100) / log 10), clipped to [0, 1]:
  a p-value is only worth its full weight with ≥ 1000 observations.
- magnitude: when the finding carries `evidence["at_stake"]` (detectors/stake.py:
  the conversions per journey associated with it, from a re-solved chain),
  magnitude = |conversions at stake| / the journey's conversions, **uncapped**:
  a driver holding 86 % of conversions outranks one holding 47 %, whatever
  their lifts. Without it (hand-built findings) the paper's |effect| clipped to
  [0, 1] is used; `components` keeps that paper form, which reproduces Table 1.
- reach = Finding.reach, the share of actors the finding touches.
- actionability = 1 when the detector marked the finding actionable, else 0.
- novelty: the paper's exp(−0.3·(seen − 1)) penalises a driver for persisting,
  so the feed instead uses `recency`: 1 while the finding still holds in the
  latest snapshot of its journey, exp(−0.3·k) once it has been missing from the
  last k period snapshots. A persisting finding keeps its rank.

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
    """The paper's magnitude: |effect| clipped to [0, 1] (Table 1)."""
    return _clip(abs(float(effect)))


def stake_magnitude(at_stake: Mapping[str, Any]) -> float:
    """|conversions at stake| as a share of the journey's conversions, uncapped (per journey when none convert)."""
    delta = abs(float(at_stake.get("per_journey", 0.0)))
    base = float(at_stake.get("baseline_per_journey", 0.0))
    return delta / base if base > 0 else delta


def novelty(seen: int) -> float:
    """The paper's novelty (Table 1); the feed uses `recency` instead."""
    return _clip(math.exp(-NOVELTY_DECAY * (max(1, int(seen)) - 1)))


def recency(missing_since: int) -> float:
    """1 while a finding holds in its journey's latest snapshot; decays over the periods it has been missing."""
    return _clip(math.exp(-NOVELTY_DECAY * max(0, int(missing_since))))


def components(*, p_value: float, n: int, effect: float, reach: float, actionable: bool, seen: int) -> dict[str, float]:
    """The paper's components, reproducing Table 1 (capped magnitude, novelty decaying with `seen`)."""
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


def feed_components(finding: Any, missing_since: int = 0) -> dict[str, float]:
    """The feed's components: magnitude from the conversions at stake (uncapped), novelty as recency."""
    at_stake = finding.evidence.get("at_stake") if isinstance(finding.evidence, Mapping) else None
    return {
        "significance": significance(finding.p_value, finding.n),
        "magnitude": stake_magnitude(at_stake) if at_stake else magnitude(finding.effect),
        "reach": _clip(finding.reach),
        "actionability": 1.0 if finding.actionable else 0.0,
        "novelty": recency(missing_since),
    }


def score_finding(finding: Any, missing_since: int, weights: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """(score, components) of one finding missing from the last `missing_since` period snapshots (0: still holds)."""
    parts = feed_components(finding, missing_since)
    return combine(parts, weights), parts
