"""One-line natural-language summary per fact, for display and for BM25 retrieval.

Summaries quote every number exactly as the fact's evidence holds it (no
re-rounding, no percentages), so an answer built from them passes the
faithfulness checker's "numbers exactly as in the bundle" rule. The verbs are
associative, never causal. `search_text` adds the words an analyst would type
for the predicate ("converting", "drop off", "differ", "changed after"), which
the summary itself should not carry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

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
    """A number exactly as stored (Python repr for floats), anything else as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _e(fact: Fact, key: str) -> str:
    value = fact.evidence.get(key, "?")
    return _q(value) if isinstance(value, str) and value != "?" else fmt(value)


def _transition(f: Fact) -> str:
    return (f"In journey {_e(f, 'journey')}, {entity_label(f.subject)} is followed by {entity_label(f.object)} "
            f"with probability {_e(f, 'probability')} ({_e(f, 'count')} of {_e(f, 'from_total')} transitions).")


def _increases(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Journeys reaching {entity_label(f.subject)} end in {o} with probability {_e(f, 'p_given_reached')} "
            f"versus {_e(f, 'p_given_not_reached')} for those that do not (lift {_e(f, 'lift')}, "
            f"n {_e(f, 'n')}, p {_e(f, 'p_value')}).")


def _driver(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"{entity_label(f.subject)} is an activation driver associated with {o}: lift {_e(f, 'lift')}, "
            f"P({o} | reached) {_e(f, 'p_given_reached')} vs {_e(f, 'p_given_not_reached')}, reach {_e(f, 'reach')}, "
            f"removal effect {_e(f, 'removal_effect')}, n {_e(f, 'n')}, q {_e(f, 'q_value')}.")


def _necessary(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Every journey ending in {o} passed through {entity_label(f.subject)}: P({o} | not reached) "
            f"{_e(f, 'p_given_not_reached')}, P({o} | reached) {_e(f, 'p_given_reached')}, reach {_e(f, 'reach')}, n {_e(f, 'n')}.")


def _dropoff(f: Fact) -> str:
    return (f"{entity_label(f.subject)} is a drop-off point in {entity_label(f.object)}: exit probability "
            f"{_e(f, 'exit_probability')} to {_e(f, 'dropoff_outcome')}, reach {_e(f, 'reach')}, n {_e(f, 'n')}.")


def _diverges(f: Fact) -> str:
    return (f"{entity_label(f.subject)} diverges from {entity_label(f.object)} after {_e(f, 'state')}: "
            f"Jensen-Shannon divergence {_e(f, 'jsd')} (n {_e(f, 'n_segment')} vs {_e(f, 'n_rest')}, q {_e(f, 'q_value')}).")


def _common(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        return (f"{entity_label(f.subject)} is {word} common in {entity_label(f.object)}: reach {_e(f, 'reach_segment')} "
                f"vs {_e(f, 'reach_rest')} in the rest (difference {_e(f, 'difference')}, n {_e(f, 'n_segment')} vs "
                f"{_e(f, 'n_rest')}, q {_e(f, 'q_value')}).")
    return render


def _changed(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        return (f"{entity_label(f.subject)} {word} {entity_label(f.object)}: probability {_e(f, 'p_before')} before "
                f"vs {_e(f, 'p_after')} after (delta {_e(f, 'delta')}, n {_e(f, 'n_before')} vs {_e(f, 'n_after')}, "
                f"q {_e(f, 'q_value')}).")
    return render


def _revisited(f: Fact) -> str:
    return (f"{entity_label(f.subject)} is revisited in {entity_label(f.object)}: {_e(f, 'visits_mean')} visits on average "
            f"among journeys reaching it; conversion {_e(f, 'p_convert_repeat')} when repeated vs "
            f"{_e(f, 'p_convert_single')} when visited once (n {_e(f, 'n_reached')}).")


def _fast(f: Fact) -> str:
    return (f"The path {entity_label(f.subject)} is a fast path to {entity_label(f.object)}: {_e(f, 'count')} journeys, "
            f"conversion rate {_e(f, 'conversion_rate')}, median duration {_e(f, 'median_duration_s')} s, "
            f"quality {_e(f, 'quality')}.")


def _associated(f: Fact) -> str:
    kind = _q(str(f.evidence.get("kind", "pattern")))
    nums = ", ".join(f"{k} {fmt(v)}" for k, v in sorted(f.evidence.items())
                     if isinstance(v, (int, float)) and not isinstance(v, bool))
    return f"{entity_label(f.subject)} is associated with {entity_label(f.object)} ({kind}): {nums}."


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
}


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
