"""One-line natural-language summary per fact, for display and for BM25 retrieval.

Summaries format numbers like the feed (percentages, counts with separators,
lifts as 2.62x, durations in units) with narrator.numbers, the formatting the
faithfulness checker reads back, so an answer built from them passes it. The verbs are
associative, never causal. `search_text` adds the words an analyst would type
for the predicate ("converting", "drop off", "differ", "changed after"), which
the summary itself should not carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from narrator.numbers import fmt_count, fmt_pct, fmt_pvalue, fmt_ratio, fmt_seconds, fmt_sig
from ontology.model import Fact
from ontology.names import entity_states

_SNAKE = re.compile(r"[_\-]+")

# Extra search words per predicate: the phrases questions use for it.
PREDICATE_WORDS: dict[str, str] = {
    "transitions_to": "transition transitions next step goes moves to after",
    "increases_probability_of": "associated with converting conversion more likely lift step increases probability",
    "is_activation_driver_for": "activation driver associated with converting conversion most associated step lift removal effect",
    "necessary_for_conversion": "necessary required needed for conversion converting every converter step",
    "is_dropoff_point_for": "drop off dropoff drop-off leave abandon exit churn lose users",
    "diverges_from": "differ difference different divergence segment compare versus behave",
    "more_common_in": "more common differ difference segment compare reach higher",
    "less_common_in": "less common differ difference segment compare reach lower",
    "regressed_after": "changed after release regression regressed worse dropped decreased",
    "changed_after": "changed after change period shift moved",
    "is_revisited_in": "revisit repeat repeated loop again visits",
    "is_fast_path_to": "fast path quick route quickest best path sequence",
    "associated_with": "associated slow path pattern",
    "has_outcome_rate": "rate conversion share percentage how many how often overall baseline outcome",
}


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


def _transition(f: Fact) -> str:
    return (f"In journey {_e(f, 'journey')}, {entity_label(f.subject)} is followed by {entity_label(f.object)} "
            f"in {_e(f, 'probability', 'pct')} of moves ({_e(f, 'count', 'count')} of {_e(f, 'from_total', 'count')}).")


def _increases(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Journeys reaching {entity_label(f.subject)} end in {o} {_e(f, 'p_given_reached', 'pct')} of the time "
            f"against {_e(f, 'p_given_not_reached', 'pct')} for those that do not (lift {_e(f, 'lift', 'ratio')}, "
            f"n = {_e(f, 'n', 'count')}, p {_p(f, 'p_value')}).")


def _p(f: Fact, key: str) -> str:
    text = _e(f, key, "p")
    return text if text.startswith("<") else "= " + text


def _driver(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"{entity_label(f.subject)} is an activation driver associated with {o}: journeys reaching it end in {o} "
            f"{_e(f, 'p_given_reached', 'pct')} of the time against {_e(f, 'p_given_not_reached', 'pct')} without it "
            f"(lift {_e(f, 'lift', 'ratio')}). It is reached by {_e(f, 'reach', 'pct')} of journeys "
            f"(n = {_e(f, 'n', 'count')}, q {_p(f, 'q_value')}).")


def _necessary(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Every journey ending in {o} passed through {entity_label(f.subject)}: it is reached by "
            f"{_e(f, 'reach', 'pct')} of journeys, and those reaching it end in {o} {_e(f, 'p_given_reached', 'pct')} "
            f"of the time (n = {_e(f, 'n', 'count')}).")


def _dropoff(f: Fact) -> str:
    counts = f" ({_e(f, 'exits', 'count')} of {_e(f, 'n', 'count')})" if "exits" in f.evidence else ""
    return (f"{entity_label(f.subject)} is a drop-off point in {entity_label(f.object)}: "
            f"{_e(f, 'exit_probability', 'pct')} of the moves out of it go to {_e(f, 'dropoff_outcome')}{counts}. "
            f"It is reached by {_e(f, 'reach', 'pct')} of journeys.")


def _diverges(f: Fact) -> str:
    return (f"{entity_label(f.subject)} differs from {entity_label(f.object)} in where journeys go after "
            f"{_e(f, 'state')}: Jensen-Shannon divergence {_e(f, 'jsd')} (n = {_e(f, 'n_segment', 'count')} against "
            f"{_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")


def _common(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        return (f"{entity_label(f.subject)} is {word} common in {entity_label(f.object)}: reached by "
                f"{_e(f, 'reach_segment', 'pct')} of its journeys against {_e(f, 'reach_rest', 'pct')} in the rest "
                f"(n = {_e(f, 'n_segment', 'count')} against {_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")
    return render


def _changed(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        delta = f.evidence.get("delta")
        return (f"{entity_label(f.subject)} {word} {entity_label(f.object)}: from {_e(f, 'p_before', 'pct')} "
                f"(n = {_e(f, 'n_before', 'count')}) to {_e(f, 'p_after', 'pct')} (n = {_e(f, 'n_after', 'count')}), "
                f"{_e(f, 'delta', 'pp')} {_direction(delta, 'higher', 'lower')} (q {_p(f, 'q_value')}).")
    return render


def _revisited(f: Fact) -> str:
    return (f"{entity_label(f.subject)} is revisited in {entity_label(f.object)}: {_e(f, 'visits_mean')} visits on "
            f"average among the {_e(f, 'n_reached', 'count')} journeys reaching it. Those repeating it convert "
            f"{_e(f, 'p_convert_repeat', 'pct')} of the time against {_e(f, 'p_convert_single', 'pct')} for single visits.")


def _fast(f: Fact) -> str:
    return (f"The path {entity_label(f.subject)} is a fast path to {entity_label(f.object)}: followed by "
            f"{_e(f, 'count', 'count')} journeys, {_e(f, 'conversion_rate', 'pct')} of which convert, in a median of "
            f"{_e(f, 'median_duration_s', 'dur')}.")


def _associated(f: Fact) -> str:
    kind = str(f.evidence.get("kind", "pattern"))
    if kind == "outcome_rate_difference":
        diff = f.evidence.get("difference")
        return (f"{entity_label(f.subject)} ends in {entity_label(f.object)} {_e(f, 'reach_segment', 'pct')} of the time "
                f"against {_e(f, 'reach_rest', 'pct')} for the rest, {_e(f, 'difference', 'pp')} "
                f"{_direction(diff, 'more', 'less')} often (n = {_e(f, 'n_segment', 'count')} against "
                f"{_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")
    return (f"{entity_label(f.subject)} is associated with {entity_label(f.object)} ({_q(kind)}): followed by "
            f"{_e(f, 'count', 'count')} journeys, {_e(f, 'conversion_rate', 'pct')} of which convert, in a median of "
            f"{_e(f, 'median_duration_s', 'dur')}.")


def _rate(f: Fact) -> str:
    return (f"{scope_label(f)}, {_e(f, 'rate', 'pct')} of completed journeys end in {entity_label(f.object)} "
            f"({_e(f, 'count', 'count')} of {_e(f, 'n', 'count')}; 95% interval {_e(f, 'ci_low', 'pct')} "
            f"to {_e(f, 'ci_high', 'pct')}).")


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


_RENDERERS: Mapping[str, Callable[[Fact], str]] = {
    "transitions_to": _transition,
    "increases_probability_of": _increases,
    "is_activation_driver_for": _driver,
    "necessary_for_conversion": _necessary,
    "is_dropoff_point_for": _dropoff,
    "diverges_from": _diverges,
    "more_common_in": _common("more"),
    "less_common_in": _common("less"),
    "regressed_after": _changed("regressed after"),
    "changed_after": _changed("changed after"),
    "is_revisited_in": _revisited,
    "is_fast_path_to": _fast,
    "associated_with": _associated,
    "has_outcome_rate": _rate,
}


_SPLIT = re.compile(r'(?<=[.!?])\s+(?=[A-Z"])')


def split_sentences(text: str) -> list[str]:
    """A summary's sentences (the checker reads each sentence on its own, and only its first 200 characters)."""
    return [part for part in _SPLIT.split(text) if part]


def summarize(fact: Fact) -> str:
    """The one-line summary of a fact (numbers verbatim from its evidence)."""
    return _RENDERERS[fact.predicate](fact)


def entity_words(entity: str) -> str:
    """An entity id as plain words: 'edge:sign_up->import_data' -> 'sign up import data'."""
    _, _, rest = entity.partition(":")
    return _SNAKE.sub(" ", re.sub(r"->|[>=*]", " ", rest))


def search_text(fact: Fact) -> str:
    """What BM25 indexes for a fact: summary, entity words, predicate phrases, segment/release context."""
    extra = [entity_words(fact.subject), entity_words(fact.object), PREDICATE_WORDS.get(fact.predicate, "")]
    for key in ("state", "journey", "kind"):
        if isinstance(fact.evidence.get(key), str):
            extra.append(_SNAKE.sub(" ", fact.evidence[key]))
    return " ".join([summarize(fact), *extra])
