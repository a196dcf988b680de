"""One-line natural-language summary per fact, for display and for BM25 retrieval.

Summaries format numbers like the feed (percentages, counts with separators,
lifts as 2.62x, durations in units) with narrator.numbers, the formatting the
faithfulness checker reads back, so an answer built from them passes it. The verbs are
associative, never causal. `search_text` adds the words an analyst would type
for the predicate ("converting", "drop off", "differ", "changed after"), which
the summary itself should not carry. Each predicate's renderer and words are
declared by its kind (narrator.kinds); the helpers here are what they share.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from narrator import kinds
from narrator.numbers import fmt_count, fmt_pct, fmt_pvalue, fmt_ratio, fmt_seconds, fmt_sig
from ontology.model import Fact
from ontology.names import entity_states

_SNAKE = re.compile(r"[_\-]+")


def _q(name: str) -> str:
    """Names are data: quoted, so a reader (and the faithfulness checker) never reads them as claims."""
    return f'"{name}"'


def entity_label(entity: str) -> str:
    """Human-readable, quoted form of an entity id: 'state:import_data' -> '"import_data"'."""
    kind, _, rest = entity.partition(":")
    if kind == "segment":
        key, _, value = rest.partition("=")
        return f"segment {_q(rest)}" if value != "*" else f"the rest of segment {_q(key)}"
    if kind in ("edge", "path"):
        return " → ".join(_q(s) for s in entity_states(entity))
    if kind in ("release", "journey", "snapshot"):
        return f"{kind} {_q(rest)}"
    return _q(rest or entity)


def fmt(value: Any) -> str:
    """A number exactly as stored (Python repr for floats), anything else as text (for raw listings)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _num(value: Any, style: str) -> str:
    """An evidence number formatted like the feed: pct (shares), pp (differences), count, ratio, p, sig, dur."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "?"
    formatter: Mapping[str, Callable[[float], str]] = {
        "pct": fmt_pct, "pp": lambda v: fmt_sig(v * 100.0, 3) + " percentage points", "count": fmt_count,
        "ratio": fmt_ratio, "p": fmt_pvalue, "sig": lambda v: fmt_sig(v, 3), "dur": fmt_seconds}
    return formatter[style](float(value))


def _e(fact: Fact, key: str, style: str = "sig") -> str:
    value = fact.evidence.get(key, "?")
    return _q(value) if isinstance(value, str) and value != "?" else _num(value, style)


def _direction(value: Any, up: str, down: str) -> str:
    return up if isinstance(value, (int, float)) and value > 0 else down


def _p(f: Fact, key: str) -> str:
    text = _e(f, key, "p")
    return text if text.startswith("<") else "= " + text


def scope_label(f: Fact) -> str:
    """Where a has_outcome_rate fact counts: 'In all data', 'In segment …', 'In the week …', 'Before release …'."""
    ev = f.evidence
    window = f"{f.valid_from[:10]} to {f.valid_to[:10]}"
    scope = ev.get("scope")
    if scope == "segment":
        return f"In {entity_label(f.subject)}"
    if scope == "period":
        return f"In the period {window}"
    if scope in ("release_before", "release_after"):
        side = "Before" if scope == "release_before" else "After"
        return f"{side} {entity_label(f.subject)} ({window})"
    return f"In all data of journey {_q(str(ev.get('journey', '')))} ({window})"


_SPLIT = re.compile(r'(?<=[.!?])\s+(?=[A-Z"])')


def split_sentences(text: str) -> list[str]:
    """A summary's sentences (the checker reads each sentence on its own, and only its first 200 characters)."""
    return [part for part in _SPLIT.split(text) if part]


def summarize(fact: Fact) -> str:
    """The one-line summary of a fact (numbers verbatim from its evidence)."""
    kind = kinds.registry().fact(fact.predicate)
    if kind is None:
        raise KeyError(fact.predicate)
    return kind.summary(fact)


def entity_words(entity: str) -> str:
    """An entity id as plain words: 'edge:sign_up->import_data' -> 'sign up import data'."""
    _, _, rest = entity.partition(":")
    return _SNAKE.sub(" ", re.sub(r"->|[>=*]", " ", rest))


def _words(predicate: str) -> str:
    kind = kinds.registry().fact(predicate)
    return kind.words if kind else ""


def search_text(fact: Fact) -> str:
    """What BM25 indexes for a fact: summary, entity words, predicate phrases, segment/release context."""
    extra = [entity_words(fact.subject), entity_words(fact.object), _words(fact.predicate)]
    for key in ("state", "journey", "kind"):
        if isinstance(fact.evidence.get(key), str):
            extra.append(_SNAKE.sub(" ", fact.evidence[key]))
    return " ".join([summarize(fact), *extra])
