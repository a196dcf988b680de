"""Kinds of detectors.dropoff: single drop-off points and clusters of consecutive ones."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.feed import pct, pts
from narrator.numbers import fmt_count
from narrator.summaries import _e, entity_label
from narrator.template import Plan, q, reach
from ontology.model import Fact


def plan(p: Plan) -> str:
    states = p.ev.get("states") if isinstance(p.ev.get("states"), list) else None
    where = " → ".join(q(s) for s in states) if states else p.subject
    outcome = q(p.ev.get("dropoff_outcome", "dropped"))
    if states:
        p.say(f"The consecutive states {where} form a drop-off cluster in the {p.journey} journey.")
    estimated = bool(p.ev.get("estimator"))
    if p.has("exit_probability"):
        counts = f" ({fmt_count(p.ev['exits'])} of {p.v('n')})" if p.has("exits") else ""
        if counts and estimated:
            counts = f" (about {fmt_count(p.ev['exits'])} of {p.v('n')}, effective counts)"
        other = f", against {p.v('baseline_exit')} of moves out of other states" if p.has("baseline_exit") else ""
        p.say(f"{p.v('exit_probability')} of the moves out of {where} go straight to {outcome}{counts}{other}.")
    if p.has("loss_share", "lost_journeys") and not states:
        lost = "an estimated " if estimated else ""
        p.say(f"{p.v('loss_share')} of all lost journeys end right after {where} "
              f"({lost}{p.v('lost_journeys')} lost in all).")
    if estimated:
        p.say("These numbers are estimates that count journeys still in progress, not only finished ones.")
        if p.has("entered_within_s"):  # positivity: no journey of the scope followed for a whole window yet
            p.say(f"They cover the moves made within {p.v('entered_within_s')} of each journey's start, "
                  "as no journey has been followed for a whole window yet.")
        if p.has("reach"):
            p.say(f"An estimated {p.v('reach')} of journeys reach {where}.")
    else:
        reach(p)
    return f"Review the experience at {where} with session recordings or user interviews to find where users stall."


def summary(f: Fact) -> str:
    about = "about " if f.evidence.get("estimator") else ""  # effective counts of the in-progress estimates
    counts = f" ({about}{_e(f, 'exits', 'count')} of {_e(f, 'n', 'count')})" if "exits" in f.evidence else ""
    return (f"{entity_label(f.subject)} is a drop-off point in {entity_label(f.object)}: "
            f"{_e(f, 'exit_probability', 'pct')} of the moves out of it go to {_e(f, 'dropoff_outcome')}{counts}. "
            f"It is reached by {_e(f, 'reach', 'pct')} of journeys.")


def feed(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    gap = None if ev.get("exit_probability") is None else float(ev["exit_probability"]) - float(ev.get("baseline_exit") or 0)
    return (f"exit rate {pct(ev.get('exit_probability'))} ({pts(gap)} vs other steps' {pct(ev.get('baseline_exit'))}), "
            f"{pct(ev.get('loss_share'))} of all losses")


HEADLINES = ("exit rate {exit_probability} of moves ({baseline_exit} from other states)", "exit rate {exit_probability} of moves")
PREDICATES = ("is_dropoff_point_for", "transitions_to")  # a point's losses are also stated as transitions

KIND = Kind(
    "dropoff",
    findings=(FindingKind("dropoff_point", PREDICATES, plan, HEADLINES, feed),
              FindingKind("dropoff_cluster", PREDICATES, plan, HEADLINES, feed)),
    facts=(FactKind("is_dropoff_point_for", summary, rf.dropoff,
                    "drop off dropoff drop-off leave abandon exit churn lose users",
                    "is a drop-off point in", ("exit_probability",)),),
    intents=(Intent("dropoff",
                    r"\bdrop[ -]?off\b|\bdrop(?:s|ped)? off\b|\bdropoffs?\b|\babandon\w*|\bleav\w*|\bexit\w*|\bchurn\w*|\blos(?:e|es|ing)\b|\blost\b",
                    ("is_dropoff_point_for",)),),
)
