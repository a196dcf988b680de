"""The journey graph's own facts (detectors.facts.base_facts, detectors.base_facts): no detector, no finding type.

Transitions, reach lifts and outcome rates are stated for every all-data snapshot; activation drivers and
drop-off points restate the first two as supporting facts."""

from __future__ import annotations

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, Intent, Kind
from narrator.summaries import _e, _p, entity_label, scope_label
from ontology.model import Fact


def summary_transition(f: Fact) -> str:
    return (f"In journey {_e(f, 'journey')}, {entity_label(f.subject)} is followed by {entity_label(f.object)} "
            f"in {_e(f, 'probability', 'pct')} of moves ({_e(f, 'count', 'count')} of {_e(f, 'from_total', 'count')}).")


def summary_increases(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Journeys reaching {entity_label(f.subject)} end in {o} {_e(f, 'p_given_reached', 'pct')} of the time "
            f"against {_e(f, 'p_given_not_reached', 'pct')} for those that do not (lift {_e(f, 'lift', 'ratio')}, "
            f"n = {_e(f, 'n', 'count')}, p {_p(f, 'p_value')}).")


def summary_rate(f: Fact) -> str:
    return (f"{scope_label(f)}, {_e(f, 'rate', 'pct')} of completed journeys end in {entity_label(f.object)} "
            f"({_e(f, 'count', 'count')} of {_e(f, 'n', 'count')}; 95% interval {_e(f, 'ci_low', 'pct')} "
            f"to {_e(f, 'ci_high', 'pct')}).")


KIND = Kind(
    "journey_graph",
    facts=(
        # a transition's "Related:" sentence and an increase's verb (higher/lower by its lift) are worded by the template
        FactKind("transitions_to", summary_transition, rf.transition,
                 "transition transitions next step goes moves to after", "is followed by"),
        FactKind("increases_probability_of", summary_increases, rf.reach_formula,
                 "associated with converting conversion more likely lift step increases probability", None, ("lift",)),
        FactKind("has_outcome_rate", summary_rate, rf.outcome_rate,
                 "rate conversion share percentage how many how often overall baseline outcome"),
    ),
    intents=(
        Intent("transition", r"\btransition\w*|\bgo(?:es)? next\b|\bfollow\w*|\bnext step\b", ("transitions_to",)),
        Intent("rate", (r"\brates?\b|\bshare\b|\bpercent\w*|\bproportion\b|\bfraction\b|\bhow (?:many|often|much)\b|\bratio\b|"
                        r"\bbaseline\b|\bhow likely\b"), ("has_outcome_rate",)),
        Intent("compare", r"\b(?:worse|worst|better|best|least|lowest|highest|poorest)\b|\b(?:less|more) often\b",
               ("has_outcome_rate",)),
    ),
)
