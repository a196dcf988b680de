"""Kinds of detectors.path_quality: fast and slow paths; it also words every associated_with fact."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.feed import pct, times
from narrator.summaries import _direction, _e, _p, _q, entity_label
from narrator.template import Plan
from ontology.model import Fact


def plan(fast: bool) -> Callable[[Plan], str]:
    def path(p: Plan) -> str:
        estimated = bool(p.ev.get("estimator"))
        if p.has("count", "share") and estimated:
            p.say(f"The path {p.subject} is followed by an estimated {p.v('share')} of journeys (an effective "
                  f"{p.v('count')}: the estimates count journeys still in progress).")
        elif p.has("count", "share"):
            p.say(f"The path {p.subject} is followed by {p.v('count')} ({p.v('share')} of journeys).")
        if p.has("conversion_rate", "rest_conversion_rate"):
            p.say(f"Journeys on this path convert {p.v('conversion_rate')} of the time, against "
                  f"{p.v('rest_conversion_rate')} for the other journeys.")
        elif p.has("conversion_rate"):
            p.say(f"Journeys on this path convert {p.v('conversion_rate')} of the time.")
        if p.has("median_length", "median_duration_s"):
            p.say(f"They take a median of {p.v('median_length')} and {p.v('median_duration_s')}.")
        if p.has("quality"):
            p.say(f"Its path quality score is {p.v('quality')} (one means typical length, duration and conversion).")
        if fast:
            return "Consider guiding new users along this path and test whether onboarding hints toward it help."
        if p.has("conversion_rate") and float(p.ev["conversion_rate"]) == 0.0:
            return "Investigate why no journey on this path converts and review the steps where it ends."
        return "Investigate the slow steps on this path and test a shorter route for the journeys that take it."
    return path


def _followed(f: Fact) -> str:
    """Who follows the path: journeys counted, or (estimates) the estimated share with its effective size."""
    if f.evidence.get("estimator"):
        return (f"followed by an estimated {_e(f, 'share', 'pct')} of journeys (an effective {_e(f, 'count', 'count')}, "
                f"journeys still in progress counted), {_e(f, 'conversion_rate', 'pct')} of which convert")
    return f"followed by {_e(f, 'count', 'count')} journeys, {_e(f, 'conversion_rate', 'pct')} of which convert"


def summary_fast(f: Fact) -> str:
    return (f"The path {entity_label(f.subject)} is a fast path to {entity_label(f.object)}: {_followed(f)}, "
            f"in a median of {_e(f, 'median_duration_s', 'dur')}.")


def summary_associated(f: Fact) -> str:
    """A slow path, or (segment_divergence) an outcome's rate in a segment against the rest."""
    kind = str(f.evidence.get("kind", "pattern"))
    if kind == "outcome_rate_difference":
        diff = f.evidence.get("difference")
        return (f"{entity_label(f.subject)} ends in {entity_label(f.object)} {_e(f, 'reach_segment', 'pct')} of the time "
                f"against {_e(f, 'reach_rest', 'pct')} for the rest, {_e(f, 'difference', 'pp')} "
                f"{_direction(diff, 'more', 'less')} often (n = {_e(f, 'n_segment', 'count')} against "
                f"{_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")
    return (f"{entity_label(f.subject)} is associated with {entity_label(f.object)} ({_q(kind)}): {_followed(f)}, "
            f"in a median of {_e(f, 'median_duration_s', 'dur')}.")


def feed_fast(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"path quality {times(ev.get('quality'))} baseline (converts {pct(ev.get('conversion_rate'))}, "
            f"time × steps {times(ev.get('time_ratio'))} typical)")


def feed_slow(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"time × steps {times(ev.get('time_ratio'))} the typical {ev.get('outcome_class', '')} journey's "
            f"(converts {pct(ev.get('conversion_rate'))})")


HEADLINES = ("path quality {quality} (1 = typical; conversion {conversion_rate})",)

KIND = Kind(
    "path_quality",
    findings=(FindingKind("fast_path", ("is_fast_path_to",), plan(True), HEADLINES, feed_fast),
              FindingKind("slow_path", ("associated_with",), plan(False), HEADLINES, feed_slow)),
    facts=(
        FactKind("is_fast_path_to", summary_fast, rf.path, "fast path quick route quickest best path sequence",
                 "is a fast path to", ("conversion_rate",)),
        FactKind("associated_with", summary_associated, rf.path, "associated slow path pattern",
                 "is associated with", ("difference", "conversion_rate")),
    ),
    intents=(Intent("path", r"\bfast\w*\b|\bquick\w*|\bshortest\b|\bslow\w*|\bpaths?\b|\broutes?\b",
                    ("is_fast_path_to", "associated_with")),),
)
