"""Kinds of detectors.regression: a rate that changed after a release or against the previous period."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from narrator import recompute_formulas as rf
from narrator.kinds import FactKind, FindingKind, Intent, Kind
from narrator.kinds.feed import pct, pts
from narrator.numbers import fmt_sig
from narrator.summaries import _direction, _e, _p, entity_label
from narrator.template import Plan
from ontology.model import Fact


def plan(p: Plan) -> str:
    if p.has("p_before", "p_after", "n_before", "n_after"):
        release = p.finding["object"].startswith("release:")
        before, after = (f"before {p.object}", "after it") if release else ("in the previous period", "in this period")
        p.say(f"The rate of {p.subject} was {p.v('p_before')} of {p.v('n_before')} {before} "
              f"and {p.v('p_after')} of {p.v('n_after')} {after}.")
    if p.has("delta", "relative_change"):
        p.say(f"That is {p.way('delta', p.v('delta') + ' higher', p.v('delta') + ' lower', 'no different')}, "
              f"{p.way('relative_change', p.v('relative_change') + ' higher', p.v('relative_change') + ' lower', 'no different')}"
              " in relative terms.")
    if p.has("z"):
        sign = "-" if float(p.ev["z"]) < 0 else ""
        p.say(f"A two-proportion test gives z = {sign}{fmt_sig(p.ev['z'], 3)}.")
    if p.ev.get("attribution") == "ambiguous":
        p.say("Several releases fall inside the comparison window, so the change is not tied to a single release.")
    if p.ev.get("traffic_changed") is True and p.has("traffic_before", "traffic_after"):
        p.say(f"The share of journeys reaching this step also shifted, from {p.v('traffic_before')} before "
              f"to {p.v('traffic_after')} after.")
    return f"Investigate the changes shipped around {p.object} that touch {p.subject}, and compare the step before and after."


def summary(word: str) -> Callable[[Fact], str]:
    def render(f: Fact) -> str:
        delta = f.evidence.get("delta")
        return (f"{entity_label(f.subject)} {word} {entity_label(f.object)}: from {_e(f, 'p_before', 'pct')} "
                f"(n = {_e(f, 'n_before', 'count')}) to {_e(f, 'p_after', 'pct')} (n = {_e(f, 'n_after', 'count')}), "
                f"{_e(f, 'delta', 'pp')} {_direction(delta, 'higher', 'lower')} (q {_p(f, 'q_value')}).")
    return render


def feed(ev: Mapping[str, Any], f: Mapping[str, Any]) -> str:
    rel = ev.get("relative_change")
    return (f"rate {pct(ev.get('p_before'))} → {pct(ev.get('p_after'))} ({pts(ev.get('delta'))}, "
            f"{'–' if rel is None else f'{100 * float(rel):+.0f}%'} relative)")


KIND = Kind(
    "regression",
    findings=(FindingKind("regression", ("regressed_after", "changed_after"), plan,
                          ("change {delta} ({p_before} → {p_after})", "relative change {relative_change}"), feed),),
    facts=(
        FactKind("regressed_after", summary("regressed after"), rf.changed,
                 "changed after release regression regressed worse dropped decreased", "regressed after", ("delta",)),
        FactKind("changed_after", summary("changed after"), rf.changed,
                 "changed after change period shift moved", "changed after", ("delta",)),
    ),
    intents=(Intent("change",
                    (r"\bchang\w*\b|\bregress\w*|\bafter (?:the )?(?:release|launch|deploy)|\bsince\b|\bshift\w*|\bgot (?:worse|better)\b|"
                     r"\bworsen\w*|\bimprov\w*"),
                    ("regressed_after", "changed_after")),),
)
