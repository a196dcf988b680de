"""Entity linking the planner needs beyond exact names: relative dates, near-miss segments, outcome words.

Dates are resolved against the data's own end (the last all-data snapshot's
window end), never the wall clock, so the same question over the same
workspace always means the same window. A near miss ("mobile") links to the
segment values whose names carry a related word (android, ios), and the plan
carries a note saying no segment has the asked name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
_DATE = re.compile(r"\b(\d{4}-\d{2}-\d{2})\b")
_MONTH = re.compile(r"\b(?:in|during|for|of)\s+(" + "|".join(MONTHS) + r")\b")
_WEEK_OF = re.compile(r"\bweek (?:of|starting|beginning) (\d{4}-\d{2}-\d{2})\b")


def _d(text: str) -> date:
    return date.fromisoformat(text[:10])


def _month_window(month: int, end: date) -> tuple[str, str]:
    year = end.year if month <= end.month else end.year - 1
    start = date(year, month, 1)
    stop = date(year + (month == 12), month % 12 + 1, 1)
    return start.isoformat(), stop.isoformat()


def _relative(text: str, end: date) -> tuple[str, str] | None:
    if re.search(r"\b(?:last|past|this|previous) week\b|\bsince last week\b", text):
        return (end - timedelta(days=7)).isoformat(), (end + timedelta(days=1)).isoformat()
    if re.search(r"\b(?:last|past|previous) (?:30 days|month)\b", text):
        first = end.replace(day=1)
        prev = (first - timedelta(days=1)).replace(day=1)
        return prev.isoformat(), first.isoformat()
    if re.search(r"\bthis month\b", text):
        return end.replace(day=1).isoformat(), (end + timedelta(days=1)).isoformat()
    return None


def resolve_window(text: str, data_end: str | None) -> tuple[str, str] | None:
    """[start, end) as ISO dates for 'week of D', 'since D', 'in March', 'last week', or explicit dates."""
    week = _WEEK_OF.search(text)
    if week:
        start = _d(week.group(1))
        return start.isoformat(), (start + timedelta(days=7)).isoformat()
    dates = sorted(_DATE.findall(text))
    end = _d(data_end) if data_end else None
    if dates:
        if re.search(r"\b(?:since|after|from)\s+" + re.escape(dates[0]), text) and len(dates) == 1 and end:
            return dates[0], (end + timedelta(days=1)).isoformat()
        return dates[0], (_d(dates[-1]) + timedelta(days=1)).isoformat()
    if end is None:
        return None
    month = _MONTH.search(text)
    if month:
        return _month_window(MONTHS.index(month.group(1)) + 1, end)
    return _relative(text, end)


def latest_release(release_at: Mapping[str, str]) -> str | None:
    """The release with the latest time ('the last release', 'since the release')."""
    if not release_at:
        return None
    return max(release_at.items(), key=lambda kv: (kv[1], kv[0]))[0]


def outcome_matches(token: str, outcome_stem: str) -> bool:
    """'approval' ~ 'approv' (approved), 'passing' ~ 'pass', 'conversion' ~ 'convert', 'drop' ~ 'drop'."""
    if token == outcome_stem:
        return True
    if len(outcome_stem) >= 4 and token.startswith(outcome_stem):
        return True
    return len(token) >= 5 and outcome_stem.startswith(token)


def near_segments(word: str, hints: Sequence[str], values: Mapping[str, Sequence[str]]) -> list[str]:
    """Segment 'key=value' names whose value (or, for a yes/no segment, whose key) carries one of `hints`."""
    out = []
    for key, vals in sorted(values.items()):
        key_parts = set(re.split(r"[_\-\s]+", key.lower()))
        for value in sorted(vals):
            parts = set(re.split(r"[_\-\s]+", value.lower()))
            if value.lower() in ("true", "yes"):
                if key_parts & set(hints):
                    out.append(f"{key}={value}")
            elif parts & set(hints) or value.lower() == word:
                out.append(f"{key}={value}")
    return out
