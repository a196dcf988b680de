"""Kinds of detectors.segment_divergence: a segment that moves, reaches or ends differently from the rest."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.feed import num, pct, pts
from narrator.summaries import _e, _p, entity_label
from narrator.template import Plan, q
from ontology.model import Fact


def plan(p: Plan) -> str:
    ev = p.ev
    if p.has("jsd"):
        state = f" on leaving {q(ev['state'])}" if ev.get("state") else ""
        test = f" ({q(ev['test'])} test)" if ev.get("test") else ""
        p.say(f"Journeys in {p.subject} move differently from the rest{state}: Jensen-Shannon divergence {p.v('jsd')}{test}.")
    if p.has("reach_segment", "reach_rest"):
        what = f"{p.subject} is reached by" if p.finding["subject"].startswith("state:") else f"{p.object} is the outcome of"
        where = p.object if p.finding["subject"].startswith("state:") else p.subject
        p.say(f"{what} {p.v('reach_segment')} of journeys in {where} against {p.v('reach_rest')} elsewhere.")
    if p.has("difference"):
        p.say(f"The segment's share is {p.way('difference', p.v('difference') + ' higher', p.v('difference') + ' lower', 'no different')}"
              " than elsewhere.")
    if p.has("n_segment", "n_rest"):
        unit = p.m("n_segment").unit
        scope = "transitions out of the compared states" if unit == "moves" else "journeys"
        sizes = " (effective sizes: the estimates count journeys still in progress)" if ev.get("estimator") else ""
        p.say(f"The comparison covers {scope}: {p.v('n_segment')} in the segment and {p.v('n_rest')} in the rest{sizes}.")
    return "Compare the segment's journeys with the rest in session recordings and test a tailored flow for it."


def summary_diverges(f: Fact) -> str:
    return (f"{entity_label(f.subject)} differs from {entity_label(f.object)} in where journeys go after "
            f"{_e(f, 'state')}: Jensen-Shannon divergence {_e(f, 'jsd')} (n = {_e(f, 'n_segment', 'count')} against "
            f"{_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")


def summary_common(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        return (f"{entity_label(f.subject)} is {word} common in {entity_label(f.object)}: reached by "
                f"{_e(f, 'reach_segment', 'pct')} of its journeys against {_e(f, 'reach_rest', 'pct')} in the rest "
                f"(n = {_e(f, 'n_segment', 'count')} against {_e(f, 'n_rest', 'count')}, q {_p(f, 'q_value')}).")
    return render


def feed(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    if "jsd" in ev:
        return f"divergence (JSD) {num(ev['jsd'])} in the moves out of \"{ev.get('state', '?')}\""
    return (f"reach {pct(ev.get('reach_segment'))} in the segment vs {pct(ev.get('reach_rest'))} in the rest "
            f"({pts(ev.get('difference'))})")


KIND = Kind(
    "segment_divergence",
    findings=(FindingKind(
        "segment_divergence", ("diverges_from", "more_common_in", "less_common_in", "associated_with"), plan,
        ("Jensen-Shannon divergence {jsd}",
         "reach difference {difference} ({reach_segment} of journeys in the segment, {reach_rest} elsewhere)"),
        feed,
        # an outcome's rate in the segment against the rest (associated_with, evidence kind outcome_rate_difference)
        {"outcome_rate_difference": ("outcome-rate difference {difference} ({reach_segment} of journeys in the segment, "
                                     "{reach_rest} elsewhere)",)}),),
    facts=(
        FactKind("diverges_from", summary_diverges, rf.diverges,
                 "differ difference different divergence segment compare versus behave", "differs from", ("jsd",)),
        FactKind("more_common_in", summary_common("more"), rf.common,
                 "more common differ difference segment compare reach higher", "is more common in", ("difference",)),
        FactKind("less_common_in", summary_common("less"), rf.common,
                 "less common differ difference segment compare reach lower", "is less common in", ("difference",)),
    ),
    intents=(Intent("segment", r"\bdiffer|\bdifference|\bdiverg|\bcompare|\bversus\b|\bvs\.?\b|\bmore common\b|\bless common\b",
                    ("diverges_from", "more_common_in", "less_common_in")),),
)
