"""What each evidence number means: its kind, unit, comparison role and sign convention.

One table serves both sides of the narration contract. The template renders a
number only through the field it comes from (so the unit, denominator and
direction word are the field's, never the template's guess), and the
faithfulness checker attributes every number it reads back to one such field
and checks the words around it against the same description.

Kinds: ``share`` (a fraction of a population, written as %), ``pp`` (a signed
difference of two shares, written in percentage points), ``rel`` (a signed
relative change, written as %), ``ratio`` (a lift, written as ``2.3x``; 1 is
no difference), ``count``, ``seconds``, ``score`` (a plain number, signed when
``neutral`` is set) and ``pvalue``. Units name the population a count or a
share is taken over: ``journeys``, ``moves`` (transitions), ``actors``,
``steps`` or ``visits``. A signed field's ``invert`` cues name its subtrahend
("journeys *without* X reach Y less often" states a positive removal effect).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from narrator import kinds
from narrator.numbers import (
    extract_numbers,
    fmt_count,
    fmt_pct,
    fmt_pvalue,
    fmt_ratio,
    fmt_seconds,
    fmt_sig,
)


@dataclass(frozen=True)
class Measure:
    kind: str
    unit: str | None = None
    role: str | None = None
    label: str = ""
    neutral: float | None = None  # set for signed kinds: the value that means "no difference"
    invert: tuple[str, ...] = ()  # cue words naming the subtrahend side of a signed difference
    outcome: bool = False  # a rate of reaching an outcome (conversion), not of reaching a state or taking a move

    @property
    def signed(self) -> bool:
        return self.neutral is not None


REMOVAL_CUES = ("without", "remov", "redirect", "skip")
_J = "journeys"
_FIXED: dict[str, Measure] = {
    "reach": Measure("share", _J, label="reach"),
    "p_given_reached": Measure("share", _J, "reached", "conversion when reached"),
    "p_given_not_reached": Measure("share", _J, "skipped", "conversion when skipped"),
    "baseline": Measure("share", _J, "baseline", "baseline conversion"),
    "absorption": Measure("share", _J, "model", "modelled conversion from the state"),
    "lift": Measure("ratio", None, label="lift", neutral=1.0, invert=("skip", "without")),
    "removal_effect": Measure("pp", None, label="absolute removal effect", neutral=0.0, invert=REMOVAL_CUES),
    "removal_effect_relative": Measure("rel", None, label="relative removal effect", neutral=0.0,
                                       invert=REMOVAL_CUES),
    "n_reached": Measure("count", _J), "n_not_reached": Measure("count", _J), "n_repeat": Measure("count", _J),
    "n_journeys": Measure("count", _J),
    "exit_probability": Measure("share", "moves", "state", "exit rate"),
    "baseline_exit": Measure("share", "moves", "baseline", "exit rate elsewhere"),
    "exits": Measure("count", "moves"),
    "loss_share": Measure("share", _J, label="share of all lost journeys"),
    "lost_journeys": Measure("count", _J),
    "delta": Measure("pp", None, label="change", neutral=0.0, invert=("before",)),
    "relative_change": Measure("rel", None, label="relative change", neutral=0.0, invert=("before",)),
    "z": Measure("score", None, label="z", neutral=0.0),
    "traffic_before": Measure("share", _J, "before", "traffic before"),
    "traffic_after": Measure("share", _J, "after", "traffic after"),
    "jsd": Measure("score", None, label="Jensen-Shannon divergence"),
    "reach_segment": Measure("share", _J, "segment", "reach in the segment"),
    "reach_rest": Measure("share", _J, "rest", "reach elsewhere"),
    "difference": Measure("pp", None, label="reach difference", neutral=0.0, invert=("elsewhere", "the rest")),
    "visits_mean": Measure("score", "visits", label="mean"),
    "p_convert_repeat": Measure("share", _J, "repeat", "conversion of repeat visitors"),
    "p_convert_single": Measure("share", _J, "single", "conversion of single visitors"),
    "conversion_gap": Measure("pp", None, label="conversion gap", neutral=0.0, invert=("repeat", "come back")),
    "extra_expected_steps": Measure("score", "steps", label="extra expected"),
    "return_probability": Measure("share", None, label="return probability"),
    "from_total": Measure("count", "moves"), "probability": Measure("share", "moves", "state", "share of moves"),
    "share": Measure("share", _J, label="share of journeys"),
    "conversion_rate": Measure("share", _J, label="conversion"),
    "rest_conversion_rate": Measure("share", _J, "rest", "conversion elsewhere"),  # path_quality on estimates
    "median_duration_s": Measure("seconds", label="median duration"),
    "entered_within_s": Measure("seconds", label="time since the journey's start"),  # dropoff estimates (positivity)
    "median_length": Measure("count", "steps", label="median length"),
    "quality": Measure("score", None, label="path quality (1 = typical)"),
    "p_value": Measure("pvalue"), "q_value": Measure("pvalue"), "gap_p_value": Measure("pvalue"),
    "confidence": Measure("score"), "chi2": Measure("score"), "dof": Measure("count"),
    "removal_rank": Measure("count"),
    # has_outcome_rate (detectors.base_facts): an outcome's rate with its Wilson interval
    "rate": Measure("share", _J, label="rate"),
    "ci_low": Measure("share", _J, "low", "interval low"), "ci_high": Measure("share", _J, "high", "interval high"),
    "level": Measure("share", None, label="interval level"),
}
_NOT_ATTRIBUTABLE = frozenset({"effect"})  # the finding's `effect` means a different thing per type


OUTCOME_KEYS = frozenset({"p_given_reached", "p_given_not_reached", "baseline", "absorption", "conversion_rate",
                          "rest_conversion_rate",
                          "p_convert_repeat", "p_convert_single", "removal_effect", "removal_effect_relative",
                          "conversion_gap", "rate", "ci_low", "ci_high"})


def _outcome_rate(item: Mapping[str, Any], key: str) -> bool:
    if key in OUTCOME_KEYS:
        return True
    if key in ("p_before", "p_after", "delta", "relative_change"):
        return str(item.get("subject", "")).startswith("outcome:")
    if key in ("reach_segment", "reach_rest", "difference"):
        return (item.get("evidence") or {}).get("kind") == "outcome_rate_difference"
    return False


def n_unit(item: Mapping[str, Any]) -> str:
    """The population a finding's (or fact's) `n` counts."""
    predicate, subject = str(item.get("predicate", "")), str(item.get("subject", ""))
    if predicate in ("is_dropoff_point_for", "diverges_from", "transitions_to"):
        return "moves"
    if predicate in ("regressed_after", "changed_after") and subject.startswith("edge:"):
        return "moves"
    return _J


def measure(item: Mapping[str, Any], key: str) -> Measure | None:
    """The measure of `key` in a finding or fact (context decides journeys vs moves); None if not a number field."""
    m = _measure(item, key)
    if m is None or not _outcome_rate(item, key):
        return m
    if key == "difference":  # a segment's outcome rate against the rest's: not a reach difference
        return replace(m, outcome=True, label="outcome-rate difference")
    return replace(m, outcome=True)


def _measure(item: Mapping[str, Any], key: str) -> Measure | None:
    if key in _NOT_ATTRIBUTABLE:
        return None
    unit = n_unit(item)
    if key == "n":
        return Measure("count", unit, "all")
    if key in ("n_segment", "n_rest"):
        return Measure("count", unit, "segment" if key == "n_segment" else "rest")
    if key in ("n_before", "n_after", "p_before", "p_after"):
        kind = "count" if key.startswith("n_") else "share"
        return Measure(kind, unit, key.split("_", 1)[1], key.replace("_", " "))
    if key == "count":
        return Measure("count", "moves" if item.get("predicate") == "transitions_to" else _J)
    if key == "conversion_rate" and "rest_conversion_rate" in (item.get("evidence") or {}):  # path vs the rest
        return Measure("share", _J, "path", "conversion on the path")
    return _FIXED.get(key)


def fields(item: Mapping[str, Any]) -> list[tuple[str, float | int, Measure]]:
    """Every (key, value, measure) a narrative may quote from one finding or fact; unknown keys are plain numbers."""
    out: list[tuple[str, float | int, Measure]] = []
    sources = [item.get("evidence") or {}, {k: item.get(k) for k in ("n", "p_value", "q_value", "confidence")}]
    for source in sources:
        for key in sorted(source):
            value = source[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            m = measure(item, key)
            if m is None and key in _NOT_ATTRIBUTABLE:
                continue
            out.append((key, value, m or Measure("count" if isinstance(value, int) else "score")))
    return out


def render(value: float, m: Measure) -> str:
    """A value in its measure's written form, magnitude only (signs are carried by direction words)."""
    if m.kind == "share" or m.kind == "rel":
        return fmt_pct(value)
    if m.kind == "pp":
        return fmt_pct(value)[:-1] + " percentage points"
    if m.kind == "ratio":
        return fmt_ratio(value)
    if m.kind == "count":
        text = fmt_count(value) if float(value).is_integer() else fmt_sig(value, 3)
        unit = m.unit[:-1] if m.unit and float(value) == 1 else m.unit  # "1 journey", "2 journeys"
        return text + (f" {unit}" if unit else "")
    if m.kind == "seconds":
        return fmt_seconds(value)
    if m.kind == "pvalue":
        return fmt_pvalue(value)
    text = fmt_sig(value, 3)
    return f"{text} {m.unit}" if m.unit else text


def shown_direction(value: float, m: Measure) -> int:
    """+1, -1 or 0: the direction a reader sees once the value is rendered (0 when it rounds to no difference)."""
    if m.neutral is None:
        return 0
    shown = extract_numbers(render(value, m))
    magnitude = shown[0].value * shown[0].scale if shown else abs(float(value))
    if m.kind == "ratio":
        return 0 if magnitude == m.neutral else (1 if magnitude > m.neutral else -1)
    return 0 if magnitude == 0 else (1 if float(value) > 0 else -1)


def _signed_render(finding: Mapping[str, Any], key: str, value: Any) -> str | None:
    m = measure(finding, key)
    if m is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    sign = {1: "+", -1: "-"}.get(shown_direction(value, m), "") if m.kind in ("pp", "rel") else ""
    return sign + render(value, m)


def headline(finding: Mapping[str, Any]) -> str:
    """The item's measure named in words with its unit, e.g. `lift 2.31x (conversion 34% when reached, ...)`."""
    ev = finding.get("evidence") or {}
    shown = {k: text for k, v in ev.items() if (text := _signed_render(finding, k, v)) is not None}
    kind = kinds.registry().findings.get(str(finding.get("type")))
    patterns = (kind.variants.get(str(ev.get("kind")), kind.headlines) if kind else ())
    for pattern in patterns:
        try:
            return pattern.format(**shown)
        except KeyError:
            continue
    return ""
