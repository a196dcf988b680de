"""Small formatting helpers the renderers share (one wording of numbers everywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from narrator import kinds, measures
from narrator.kinds.feed import num, pct


def escape_markup(text: str) -> str:
    """`&`, `<` and `>` as entities: names cannot become HTML in rendered Markdown, nor mentions/links in Slack."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pval(value: Any) -> str:
    """A p- or q-value; 0.0 only arises from floating-point underflow, so it is shown as a bound, not as 0."""
    if value is not None and float(value) == 0.0:
        return "<1e-300"
    return num(value)


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


def measure_text(item: Mapping[str, Any]) -> str:
    """The finding's headline number with its measure and unit, e.g. 'lift 2.62× (conversion 44.2% when reached, …)'.

    The narrator's typed measures (narrator.measures, the ones `verify` checks) come first; the kind's feed wording
    (narrator.kinds) covers evidence they do not name; a type without a kind gets its effect, named as such.
    (`effect` alone is lift−1, quality−1, a relative change or a JSD depending on the type, so it is never printed
    bare.)"""
    f = item["finding"]
    typed = measures.headline(f)
    if typed:
        return typed
    kind = kinds.registry().findings.get(f["type"])
    if kind is None:
        return f"{f['type'].replace('_', ' ')} effect {num(item.get('effect', f.get('effect')))}"
    return kind.feed(f.get("evidence") or {}, f)


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
