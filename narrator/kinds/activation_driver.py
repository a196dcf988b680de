"""Kinds of detectors.activation_driver: activation drivers and steps necessary for conversion."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from narrator import measures
from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.feed import name, pct, times
from narrator.summaries import _e, _p, entity_label
from narrator.template import Plan, reach, removal
from ontology.model import Fact


def in_progress(p: Plan) -> None:
    """Say, in plain words, that the numbers are estimates counting journeys still in progress (issue 14); the
    journey counts behind them stay in the evidence and the trace."""
    if p.ev.get("estimator"):
        p.say("These rates are estimates that count journeys still in progress whose outcome is already known, "
              "each weighted for how long it was followed; journey counts are effective sizes.")


def plan_driver(p: Plan) -> str:
    if p.has("p_given_reached", "p_given_not_reached", "lift"):
        p.say(f"Journeys that reach {p.subject} end in {p.object} {p.v('p_given_reached')} of the time, "
              f"against {p.v('p_given_not_reached')} for journeys that skip it, a lift of {p.v('lift')}.")
    reach(p)
    in_progress(p)
    removal(p)
    if p.has("removal_effect") and measures.shown_direction(p.ev["removal_effect"], p.m("removal_effect")) < 0:
        return (f"Investigate what journeys that reach {p.subject} have in common before moving it, since the "
                "chain model gives it a negative absolute removal effect.")
    return f"Consider surfacing {p.subject} earlier in the {p.journey} journey and test that change in a controlled experiment."


def plan_necessary(p: Plan) -> str:
    if p.has("p_given_reached", "p_given_not_reached"):
        p.say(f"Journeys that skip {p.subject} end in {p.object} in {p.v('p_given_not_reached')} of cases, "
              f"against {p.v('p_given_reached')} for journeys that pass through it.")
    reach(p)
    in_progress(p)
    return f"Investigate how users who do not reach {p.subject} could be routed to it, and monitor its reach."


def summary_driver(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"{entity_label(f.subject)} is an activation driver associated with {o}: journeys reaching it end in {o} "
            f"{_e(f, 'p_given_reached', 'pct')} of the time against {_e(f, 'p_given_not_reached', 'pct')} without it "
            f"(lift {_e(f, 'lift', 'ratio')}). It is reached by {_e(f, 'reach', 'pct')} of journeys "
            f"(n = {_e(f, 'n', 'count')}, q {_p(f, 'q_value')}).")


def summary_necessary(f: Fact) -> str:
    o = entity_label(f.object)
    return (f"Every journey ending in {o} passed through {entity_label(f.subject)}: it is reached by "
            f"{_e(f, 'reach', 'pct')} of journeys, and those reaching it end in {o} {_e(f, 'p_given_reached', 'pct')} "
            f"of the time (n = {_e(f, 'n', 'count')}).")


def feed_driver(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"lift {times(ev.get('lift'))} ({name(f['object'])} {pct(ev.get('p_given_reached'))} when reached "
            f"vs {pct(ev.get('p_given_not_reached'))} when skipped)")


def feed_necessary(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"{name(f['object'])} {pct(ev.get('p_given_reached'))} when reached, "
            f"{pct(ev.get('p_given_not_reached', 0.0))} when skipped")


KIND = Kind(
    "activation_driver",
    findings=(
        FindingKind("activation_driver", ("is_activation_driver_for", "increases_probability_of"), plan_driver,
                    ("lift {lift} (conversion {p_given_reached} when reached, {p_given_not_reached} when skipped)",
                     "lift {lift}"), feed_driver),
        FindingKind("necessary_for_conversion", ("necessary_for_conversion",), plan_necessary,
                    ("conversion {p_given_reached} when reached, {p_given_not_reached} when skipped",), feed_necessary),
    ),
    facts=(
        FactKind("is_activation_driver_for", summary_driver, rf.driver,
                 "activation driver associated with converting conversion most associated step lift removal effect",
                 "is an activation driver for", ("lift",)),
        FactKind("necessary_for_conversion", summary_necessary, rf.reach_formula,
                 "necessary required needed for conversion converting every converter step",
                 "precedes every case of", ("reach",)),
    ),
    intents=(
        Intent("driver",
               (r"\b(most|strongest|best|top)\b.*\bassociat|\bdriv(?:er|ers|es|e|ing)\b|\bassociated with (?:convert|conver|activat)|"
                r"\bincreas\w* (?:the )?(?:probability|chance|likelihood)|\blift\b|\bmatters?\b|\bimportant\b|\bkey (?:step|factor)|"
                r"\bpredict\w* (?:convers|success)|\bhelps?\b"),
               ("is_activation_driver_for", "increases_probability_of", "necessary_for_conversion")),
        Intent("necessary", r"\bnecessary\b|\brequired\b|\bmust\b|\bneeded\b",
               ("necessary_for_conversion", "is_activation_driver_for")),
    ),
)
