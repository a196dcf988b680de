"""Kinds of detectors.repeated_visit: a state journeys come back to."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.activation_driver import in_progress
from narrator.kinds.feed import num, pct
from narrator.numbers import fmt_count, fmt_sig
from narrator.summaries import _e, entity_label
from narrator.template import Plan
from ontology.model import Fact


def plan(p: Plan) -> str:
    if p.has("visits_mean", "n_repeat", "n_reached"):
        p.say(f"Journeys that reach {p.subject} visit it {fmt_sig(p.ev['visits_mean'], 3)} times on average, "
              f"and {fmt_count(p.ev['n_repeat'])} of {p.v('n_reached')} come back to it more than once.")
    if p.has("p_convert_repeat", "p_convert_single"):
        p.say(f"Repeat visitors convert {p.v('p_convert_repeat')} of the time against "
              f"{p.v('p_convert_single')} for single visits.")
    in_progress(p)
    if p.has("conversion_gap"):
        p.say(f"Repeat visitors convert {p.way('conversion_gap', p.v('conversion_gap') + ' less often', p.v('conversion_gap') + ' more often', 'as often')}"
              " than single visitors.")
    if p.has("extra_expected_steps"):
        p.say(f"Revisits are associated with {fmt_sig(p.ev['extra_expected_steps'], 3)} extra expected steps.")
    if p.has("conversion_gap") and float(p.ev["conversion_gap"]) < 0:
        return f"Investigate what brings users back to {p.subject} using session recordings before changing the step."
    return f"Investigate why users return to {p.subject} using session recordings, and simplify the step if it confuses them."


def summary(f: Fact) -> str:
    return (f"{entity_label(f.subject)} is revisited in {entity_label(f.object)}: {_e(f, 'visits_mean')} visits on "
            f"average among the {_e(f, 'n_reached', 'count')} journeys reaching it. Those repeating it convert "
            f"{_e(f, 'p_convert_repeat', 'pct')} of the time against {_e(f, 'p_convert_single', 'pct')} for single visits.")


def feed(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    return (f"return probability {pct(ev.get('return_probability'))} ({num(ev.get('visits_mean'), 2)} visits per visitor); "
            f"converts {pct(ev.get('p_convert_repeat'))} after repeats vs {pct(ev.get('p_convert_single'))} after one visit")


KIND = Kind(
    "repeated_visit",
    findings=(FindingKind("repeated_visit", ("is_revisited_in",), plan,
                          ("mean {visits_mean} (conversion {p_convert_repeat} when repeated, {p_convert_single} when once)",
                           "mean {visits_mean}"), feed),),
    facts=(FactKind("is_revisited_in", summary, rf.revisited, "revisit repeat repeated loop again visits",
                    "is often revisited in", ("visits_mean",)),),
    intents=(Intent("revisit", r"\brevisit\w*|\brepeat\w*|\bloop\w*|\bagain\b", ("is_revisited_in",)),),
)
