"""Small formatting helpers the renderers share (one wording of numbers everywhere)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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
    f = item["finding"]
    from narrator.measures import headline as measure
    from narrator.measures import n_label

    seen = (f"seen in {item['seen']} of {item['periods']} period snapshots" if item.get("periods") and item.get("seen")
            else "on all the data only")
    effect = measure(f) or f"effect={num(item.get('effect', f.get('effect')))}"
    return (f"{stake_text(item)}{n_label({**f, 'n': item.get('n', f.get('n'))})}  {effect}  "
            f"reach={pct(item.get('reach', f.get('reach')))}  p={pval(f.get('p_value'))}  q={pval(f.get('q_value'))}  "
            f"since {str(item.get('since', ''))[:10]} ({seen})")


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
