"""Mutations of a faithful narrative that a faithfulness checker must reject.

Each function takes the narrative text (as the feed prints it) and the bundle, and
returns (description, mutated text) pairs; a mutation is only produced where it
changes what the text claims (quoted names and dates are never touched).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from narrator import attribution, numbers
from narrator.checker import SPLIT_RE

QUOTED = re.compile(r'"[^"]*"')
OPPOSITE = {"more": "less", "less": "more", "higher": "lower", "lower": "higher", "fewer": "more",
            "increased": "decreased", "decreased": "increased", "greater": "smaller", "smaller": "greater"}
UNIT_SWAP = {"journeys": "moves", "moves": "journeys", "journey": "move", "move": "journey",
             "percentage points": "%"}

Mutation = tuple[str, str]


def _blank_quotes(text: str) -> str:
    blanked = QUOTED.sub(lambda m: '"' + "_" * (len(m.group(0)) - 2) + '"', text)
    return numbers.DATE_RE.sub(lambda m: "_" * len(m.group(0)), blanked)


def _numbers(text: str) -> list[numbers.TextNumber]:
    return [n for n in numbers.extract_numbers(_blank_quotes(text)) if not n.spelled and not n.threshold]


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in SPLIT_RE.finditer(_blank_quotes(text)):
        spans.append((start, m.start()))
        start = m.end()
    return spans + [(start, len(text))]


def _form(n: numbers.TextNumber) -> str:
    return re.sub(r"[\d.,]", "", n.text).strip()


def swapped_numbers(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """Two numbers of one sentence written in the same form (both %, both counts, …) trade places."""
    found = _numbers(text)
    for lo, hi in _sentences(text):
        inside = [n for n in found if lo <= n.start < hi]
        for i, a in enumerate(inside):
            for b in inside[i + 1:]:
                if _form(a) == _form(b) and a.value * a.scale != b.value * b.scale:
                    mutated = text[:a.start] + b.text + text[a.end:b.start] + a.text + text[b.end:]
                    yield f"swap {a.text} <-> {b.text}", mutated


def moved_numbers(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """A number replaced by one of the same form from another sentence (a number moved to where it means else)."""
    found = _numbers(text)
    spans = _sentences(text)
    where = {n.start: next(i for i, (lo, hi) in enumerate(spans) if lo <= n.start <= hi) for n in found}
    for a in found:
        other = next((b for b in found if where[b.start] != where[a.start] and _form(a) == _form(b)
                      and b.value * b.scale != a.value * a.scale), None)
        if other is not None:
            yield f"move {other.text} over {a.text}", text[:a.start] + other.text + text[a.end:]


def flipped_direction(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """Each direction word the checker reads (more/less/higher/lower/…) replaced by its opposite."""
    blank = _blank_quotes(text)
    for pos, _ in attribution._directions(blank):
        word = re.match(r"\w+", blank[pos:])
        if word and word.group(0).lower() in OPPOSITE:
            w = word.group(0)
            yield f"flip {w}", text[:pos] + OPPOSITE[w.lower()] + text[pos + len(w):]


def wrong_denominator(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """In "A of B", B replaced by another count of the bundle that is at least A."""
    counts = sorted({int(v) for f in [bundle["finding"], *bundle["facts"]] for v in numbers.numeric_values(
        f.get("evidence", {})) if isinstance(v, int) and not isinstance(v, bool)} | {int(bundle["finding"]["n"])})
    found = _numbers(text)
    for a, b in zip(found, found[1:]):
        if "%" in a.text or not re.fullmatch(r"\s+of\s+", text[a.end:b.start]):
            continue
        other = next((c for c in counts if c > a.value * a.scale and c != b.value * b.scale), None)
        if other is not None:
            yield f"denominator {b.text} -> {other:,}", text[:b.start] + f"{other:,}" + text[b.end:]


def wrong_unit(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """A unit after a number replaced by another (journeys <-> moves, percentage points -> %)."""
    blank = _blank_quotes(text)
    for n in _numbers(text):
        if n.text.endswith("percentage points"):
            yield f"unit {n.text} -> %", text[:n.end - len(" percentage points")] + "%" + text[n.end:]
            continue
        m = re.match(r"(\s+(?:of\s+)?)(journeys|moves|journey|move)\b", blank[n.end:])
        if m:
            at = n.end + len(m.group(1))
            yield f"unit {m.group(2)} after {n.text}", text[:at] + UNIT_SWAP[m.group(2)] + text[at + len(m.group(2)):]


def sign_flip(text: str, bundle: Mapping[str, Any]) -> Iterator[Mutation]:
    """An explicit sign removed, or a minus sign put in front of an unsigned number."""
    for n in _numbers(text):
        if n.sign:  # an explicit sign turned round ("+3 points" -> "-3 points"); a dropped minus too
            at = text.index(n.text, n.start)
            bare = n.text.lstrip("+-−")
            yield f"flip sign of {n.text}", text[:at] + ("+" if n.sign < 0 else "-") + bare + text[at + len(n.text):]
            if n.sign < 0:
                yield f"drop sign of {n.text}", text[:at] + bare + text[at + len(n.text):]
        else:
            yield f"negate {n.text}", text[:n.start] + "-" + text[n.start:]


MUTATIONS: dict[str, Callable[[str, Mapping[str, Any]], Iterator[Mutation]]] = {
    "swapped numbers": swapped_numbers, "moved numbers": moved_numbers, "flipped direction": flipped_direction,
    "wrong denominator": wrong_denominator, "wrong unit": wrong_unit, "sign flip": sign_flip,
}
