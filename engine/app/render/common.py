"""Small formatting helpers the renderers share (one wording of numbers everywhere)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from narrator import measures


def escape_markup(text: str) -> str:
    """`&`, `<` and `>` as entities: names cannot become HTML in rendered Markdown, nor mentions/links in Slack."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}%"


def pval(value: Any) -> str:
    """A p- or q-value; 0.0 only arises from floating-point underflow, so it is shown as a bound, not as 0."""
    if value is not None and float(value) == 0.0:
        return "<1e-300"
    return num(value)


def num(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, int):
        return str(value)
    v = float(value)
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def headline(item: Mapping[str, Any]) -> str:
    """`subject predicate object` in plain words, with the segment/release qualifier."""
    f = item["finding"]
    words = f"{f['subject']} {f['predicate'].replace('_', ' ')} {f['object']}"
    if f.get("segment") and f["segment"] not in f["subject"] + f["object"]:
        words += f" [segment {f['segment']}]"
    return words


def stats_line(item: Mapping[str, Any]) -> str:
    """The item's numbers, each named: its measure and unit (measure_text), n with its unit, reach, p, q, since."""
    f = item["finding"]
    seen = (f"seen in {item['seen']} of {item['periods']} period snapshots" if item.get("periods") and item.get("seen")
            else "on all the data only")
    n = item.get("n", f.get("n"))
    return (f"{stake_text(item)}{measure_text(item)}  n={count_words(n)} {measures.n_unit(f)}  "
            f"reach={pct(item.get('reach', f.get('reach')))}  p={pval(f.get('p_value'))}  q={pval(f.get('q_value'))}  "
            f"since {str(item.get('since', ''))[:10]} ({seen})")


def count_words(value: Any) -> str:
    """A count with thousands separators ('1,553')."""
    return f"{int(value):,}" if isinstance(value, (int, float)) and float(value).is_integer() else num(value)


def pts(value: Any) -> str:
    """A difference of two proportions in percentage points, signed: '+41.2 pts'."""
    return "–" if value is None else f"{100 * float(value):+.1f} pts"


def times(value: Any) -> str:
    return "–" if value is None else f"{float(value):.2f}×"


def _name(entity: Any) -> str:
    return str(entity or "").split(":", 1)[-1]


def _driver(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"lift {times(ev.get('lift'))} ({_name(f['object'])} {pct(ev.get('p_given_reached'))} when reached "
            f"vs {pct(ev.get('p_given_not_reached'))} when skipped)")


def _necessary(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"{_name(f['object'])} {pct(ev.get('p_given_reached'))} when reached, "
            f"{pct(ev.get('p_given_not_reached', 0.0))} when skipped")


def _dropoff(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    gap = None if ev.get("exit_probability") is None else float(ev["exit_probability"]) - float(ev.get("baseline_exit") or 0)
    return (f"exit rate {pct(ev.get('exit_probability'))} ({pts(gap)} vs other steps' {pct(ev.get('baseline_exit'))}), "
            f"{pct(ev.get('loss_share'))} of all losses")


def _regression(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    rel = ev.get("relative_change")
    return (f"rate {pct(ev.get('p_before'))} → {pct(ev.get('p_after'))} ({pts(ev.get('delta'))}, "
            f"{'–' if rel is None else f'{100 * float(rel):+.0f}%'} relative)")


def _segment(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    if "jsd" in ev:
        return f"divergence (JSD) {num(ev['jsd'])} in the moves out of \"{ev.get('state', '?')}\""
    return (f"reach {pct(ev.get('reach_segment'))} in the segment vs {pct(ev.get('reach_rest'))} in the rest "
            f"({pts(ev.get('difference'))})")


def _revisit(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"return probability {pct(ev.get('return_probability'))} ({num(ev.get('visits_mean'), 2)} visits per visitor); "
            f"converts {pct(ev.get('p_convert_repeat'))} after repeats vs {pct(ev.get('p_convert_single'))} after one visit")


def _fast(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"path quality {times(ev.get('quality'))} baseline (converts {pct(ev.get('conversion_rate'))}, "
            f"time × steps {times(ev.get('time_ratio'))} typical)")


def _slow(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"time × steps {times(ev.get('time_ratio'))} the typical {ev.get('outcome_class', '')} journey's "
            f"(converts {pct(ev.get('conversion_rate'))})")


# What `effect` is for each finding type, said with its measure and unit (effect alone is lift−1, quality−1,
# a relative change or a JSD depending on the type, so it is never printed bare).
MEASURES: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "activation_driver": _driver, "necessary_for_conversion": _necessary, "dropoff_point": _dropoff,
    "dropoff_cluster": _dropoff, "regression": _regression, "segment_divergence": _segment,
    "repeated_visit": _revisit, "fast_path": _fast, "slow_path": _slow,
}

def measure_text(item: Mapping[str, Any]) -> str:
    """The finding's headline number with its measure and unit, e.g. 'lift 2.62× (conversion 44.2% when reached, …)'.

    The narrator's typed measures (narrator.measures, the ones `verify` checks) come first; the wordings above
    cover evidence they do not name; an extension's type gets its effect, named as such."""
    f = item["finding"]
    typed = measures.headline(f)
    if typed:
        return typed
    render = MEASURES.get(f["type"])
    if render is None:
        return f"{f['type'].replace('_', ' ')} effect {num(item.get('effect', f.get('effect')))}"
    return render(f.get("evidence") or {}, f)


def stake_text(item: Mapping[str, Any]) -> str:
    """`at stake +96 approved per week (95% 91 to 101)  ` from the item's at_stake (detectors/stake.py), or ''."""
    s = item.get("at_stake")
    if not isinstance(s, Mapping) or not s.get("per_week"):
        return ""
    weekly = float(s.get("window_days") or 0) >= 7
    scale = 1.0 if weekly else float(s["in_window"]) / float(s["per_week"])
    unit = "per week" if weekly else f"in the {float(s['window_days']):.1f}-day window"
    value, low, high = (float(s[k]) * scale for k in ("per_week", "low", "high"))
    caveat = ", first-order approximation" if s.get("first_order_approximation") else ""
    return (f"at stake {value:+,.0f} {s.get('outcome', 'conversions')} {unit} "
            f"(95% {low:,.0f} to {high:,.0f}{caveat})  ")


def narrative_text(item: Mapping[str, Any]) -> str:
    narrative = item.get("narrative") or {}
    return str(narrative.get("text") or "")
