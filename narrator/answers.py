"""Answers to rate questions from has_outcome_rate facts: one rate, a ranking of segments, before/after a release.

Every sentence cites the facts whose numbers it uses, numbers are formatted
like the feed (narrator.numbers), and comparisons say whether the 95% Wilson
intervals overlap: two rates whose intervals overlap are not called different.
Nothing here computes a new number; every number is a fact's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from narrator.numbers import fmt_count, fmt_pct
from narrator.planner import Plan
from narrator.summaries import entity_label, split_sentences, summarize
from ontology.model import Fact

Sentence = dict[str, Any]
MAX_LISTED = 10  # segment values spelled out in a ranking (the lowest or highest first)
_WORST = ("worse", "worst", "least", "lowest", "lower", "less", "poor")


def _say(text: str, *facts: Fact) -> Sentence:
    return {"text": text, "fact_ids": [f.fact_id for f in facts]}


def _summary(fact: Fact) -> list[Sentence]:
    return [_say(part, fact) for part in split_sentences(summarize(fact))]


def rate_facts(facts: Sequence[Fact], outcome: str) -> list[Fact]:
    return sorted((f for f in facts if f.predicate == "has_outcome_rate" and f.object == f"outcome:{outcome}"),
                  key=lambda f: (f.valid_from, f.subject, f.fact_id))


def _scope(facts: Sequence[Fact], *scopes: str) -> list[Fact]:
    return [f for f in facts if f.evidence.get("scope") in scopes]


def _journeys(facts: Sequence[Fact], plan: Plan) -> list[Fact]:
    if not plan.journeys:
        return list(facts)
    return [f for f in facts if f.evidence.get("journey") in plan.journeys] or list(facts)


def _segment_match(fact: Fact, wanted: Sequence[str]) -> bool:
    seg = str(fact.evidence.get("segment", ""))
    return any(seg == w or seg.startswith(w + "=") for w in wanted)


def _overlap(a: Fact, b: Fact) -> bool:
    return float(a.evidence["ci_low"]) <= float(b.evidence["ci_high"]) and \
        float(b.evidence["ci_low"]) <= float(a.evidence["ci_high"])


def _pct(f: Fact) -> str:
    return fmt_pct(float(f.evidence["rate"]))


def _n(f: Fact, key: str) -> str:
    return fmt_count(int(f.evidence[key]))


def _overall(facts: Sequence[Fact]) -> Fact | None:
    return next(iter(_scope(facts, "all")), None)


def single_rates(facts: Sequence[Fact], plan: Plan) -> list[Sentence]:
    """The rate of each asked scope: segment values, periods in the window, or all data."""
    if plan.segments:
        chosen = [f for f in _scope(facts, "segment") if _segment_match(f, plan.segments)]
    elif plan.window:
        chosen = period_rates(facts, plan.window)
    else:
        chosen = _scope(facts, "all")
    if not chosen:
        return []
    out = [s for f in chosen for s in _summary(f)]
    if plan.window and not plan.segments and chosen[0].valid_to[:10] <= plan.window[0]:
        out.insert(0, _say("No period in the asked window has all its journeys finished yet; "
                           f"the latest that has is {chosen[0].valid_from[:10]} to {chosen[0].valid_to[:10]}.", chosen[0]))
    overall = _overall(facts)
    if overall is not None and overall not in chosen:
        out.append(_say(f"For comparison, {summarize(overall)[0].lower()}{summarize(overall)[1:]}", overall))
    return out


def period_rates(facts: Sequence[Fact], window: tuple[str, str]) -> list[Fact]:
    """Period facts overlapping the window [start, end); none → the latest period that ends before it."""
    periods = _scope(facts, "period")
    inside = [f for f in periods if f.valid_from[:10] < window[1] and f.valid_to[:10] > window[0]]
    if inside:
        return inside
    before = [f for f in periods if f.valid_to[:10] <= window[1]]
    return before[-1:]


def ranking(facts: Sequence[Fact], plan: Plan, question: str, tests: Sequence[Fact] = ()) -> list[Sentence]:
    """Segment values ranked by rate: the lowest (or highest) first, against all data, intervals compared."""
    pool = _scope(facts, "segment")
    if plan.segments:
        pool = [f for f in pool if _segment_match(f, plan.segments)]
    if len(pool) < 2:
        return []
    worst = any(w in question.lower() for w in _WORST)
    pool.sort(key=lambda f: (float(f.evidence["rate"]), f.subject), reverse=not worst)
    top, other = pool[0], pool[-1]
    outcome = entity_label(top.object)
    word, opposite = ("lowest", "highest") if worst else ("highest", "lowest")
    out = [_say(f"Of the segment values, {entity_label(top.subject)} has the {word} rate of {outcome}: "
                f"{_pct(top)} ({_n(top, 'count')} of {_n(top, 'n')}); the {opposite} is "
                f"{entity_label(other.subject)} at {_pct(other)}.", top, other)]
    overall = _overall(facts)
    if overall is not None:
        out.append(_say(f"Across all data the rate is {_pct(overall)}.", overall))
    overlap = _overlap(top, other)
    out.append(_say(f"The 95% intervals of {entity_label(top.subject)} and {entity_label(other.subject)} "
                    + ("overlap, so the data does not show a clear difference." if overlap else
                       "do not overlap."), top, other))
    for f in tests:  # the detectors' own test of a segment's rate against the rest, when one was significant
        if f.subject in (top.subject, other.subject):
            out += _summary(f)
    out += [s for f in pool[:MAX_LISTED] for s in _summary(f)]
    return out


def release_rates(facts: Sequence[Fact], release: str) -> list[Sentence]:
    """The rate before and after a release, with whether the intervals overlap."""
    sides = [f for f in _scope(facts, "release_before", "release_after") if f.evidence.get("release") == release]
    before = next((f for f in sides if f.evidence["scope"] == "release_before"), None)
    after = next((f for f in sides if f.evidence["scope"] == "release_after"), None)
    if before is None or after is None:
        return []
    rb, ra = float(before.evidence["rate"]), float(after.evidence["rate"])
    direction = "lower" if ra < rb else "higher" if ra > rb else "the same"
    outcome = entity_label(before.object)
    out = [_say(f"The rate of {outcome} is {direction} after release \"{release}\": {_pct(after)} "
                f"({_n(after, 'count')} of {_n(after, 'n')}) against {_pct(before)} before "
                f"({_n(before, 'count')} of {_n(before, 'n')}).", before, after)]
    out.append(_say("Their 95% intervals " + ("overlap, so the data does not show a clear change."
                                             if _overlap(before, after) else "do not overlap."), before, after))
    out += _summary(before) + _summary(after)
    return out


def rate_answer(facts: Sequence[Fact], plan: Plan, outcome: str) -> list[Sentence]:
    """Sentences answering a rate, comparison or rate-change question for `outcome`; [] when no fact fits."""
    pool = _journeys(rate_facts(facts, outcome), plan)
    if not pool:
        return []
    if "change" in plan.intents and plan.releases:
        out = []
        for release in plan.releases:
            out += release_rates(pool, release)
        return out
    if "compare" in plan.intents:
        tests = [f for f in facts if f.predicate == "associated_with" and f.object == f"outcome:{outcome}"
                 and f.evidence.get("kind") == "outcome_rate_difference"]
        return ranking(pool, plan, plan.question, sorted(tests, key=lambda f: (f.subject, f.fact_id)))
    return single_rates(pool, plan)

