"""The template narrator: deterministic, offline, the default backend.

One sentence plan per finding type (each declared by its kind, narrator.kinds),
numbers formatted by narrator.numbers (so the checker always reads them back),
associative verbs only, names quoted as data, every sentence citing the facts
whose numbers it uses, the confidence label and sample size stated, and one
concrete recommendation last.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from narrator import kinds, measures
from narrator.bundle import clean_name, entity_states, local_name, primary_fact_id
from narrator.checker import Narrative, Sentence
from narrator.measures import Measure
from narrator.numbers import fmt_count, fmt_pct, fmt_pvalue, fmt_sig

MAX_RELATED_SENTENCES = 3


def q(name: Any) -> str:
    """A user-controlled name, quoted so readers (and the checker) see it as data."""
    return f'"{clean_name(str(name))}"'


def entity(ent: str) -> str:
    """Readable entity: states and outcomes quoted, edges and paths as quoted arrows."""
    kind = ent.partition(":")[0]
    if kind in ("edge", "path"):
        return " → ".join(q(s) for s in entity_states(ent))
    if kind == "segment":
        return f"segment {q(local_name(ent))}"
    if kind == "release":
        return f"release {q(local_name(ent))}"
    if kind == "snapshot":
        return "the previous period"
    return q(local_name(ent))


def num(x: float) -> str:
    """Counts and whole numbers exactly, other values to three significant digits."""
    if isinstance(x, int) or float(x).is_integer():
        return fmt_count(x)
    return fmt_sig(x, 3)


class Plan:
    """Accumulates sentences for one bundle; every sentence names the facts it used.

    Numbers are written only through `v(key)`: the evidence field's own measure
    (narrator.measures) decides the unit, the population and the form."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.bundle = bundle
        self.finding = bundle["finding"]
        self.ev: Mapping[str, Any] = self.finding.get("evidence", {})
        self.head = primary_fact_id(bundle)
        self.sentences: list[Sentence] = []

    def has(self, *keys: str) -> bool:
        return all(isinstance(self.ev.get(k), (int, float)) and not isinstance(self.ev.get(k), bool) for k in keys)

    def m(self, key: str) -> Measure:
        return measures.measure(self.finding, key) or Measure("score")

    def v(self, key: str) -> str:
        """An evidence value in its field's written form (magnitude; see `way` for the direction)."""
        value = self.finding["n"] if key == "n" else self.ev[key]
        return measures.render(value, self.m(key))

    def way(self, key: str, up: str, down: str, same: str) -> str:
        """The direction word the field's sign, as shown, allows."""
        return {1: up, -1: down, 0: same}[measures.shown_direction(self.ev[key], self.m(key))]

    def say(self, text: str, *fact_ids: str) -> None:
        self.sentences.append(Sentence(text, tuple(fact_ids) or (self.head,)))

    @property
    def subject(self) -> str:
        return entity(self.finding["subject"])

    @property
    def object(self) -> str:
        return entity(self.finding["object"])

    @property
    def journey(self) -> str:
        return q(self.finding.get("journey", ""))


def reach(p: Plan) -> None:
    """Reach as a share of journeys, with its journey count and, when the evidence has it, the journey total.

    From in-progress estimates (evidence names an estimator) the reach is a weighted share and the counts are
    effective sizes, whose ratio is not that share: the sentence gives the share alone."""
    if not p.has("reach", "n_reached"):
        return
    if p.ev.get("estimator"):
        p.say(f"{p.subject} is reached by an estimated {p.v('reach')} of journeys.")
        return
    whole = "n" if measures.n_unit(p.finding) == "journeys" else "n_journeys" if p.has("n_journeys") else None
    counts = f"{fmt_count(p.ev['n_reached'])} of {p.v(whole)}" if whole else p.v("n_reached")
    p.say(f"{p.subject} is reached by {p.v('reach')} of journeys ({counts}).")


def removal(p: Plan) -> None:
    """The two removal effects, each named as its own measure."""
    if p.has("removal_effect", "baseline"):
        how = p.way("removal_effect", f"{p.v('removal_effect')} less often than",
                    f"{p.v('removal_effect')} more often than", "as often as")
        p.say(f"In the absorbing-chain model, journeys without {p.subject} end in {p.object} {how} "
              f"the {p.v('baseline')} baseline (the absolute removal effect).")
    if p.has("removal_effect_relative"):
        how = p.way("removal_effect_relative", f"{p.v('removal_effect_relative')} less often",
                    f"{p.v('removal_effect_relative')} more often", "as often")
        p.say(f"A second, separate measure is the relative removal effect: with every journey entering {p.subject} "
              f"redirected to drop-off the model ends in {p.object} {how} in relative terms.")


def _headline(fact: Mapping[str, Any]) -> str:
    """The fact's own measure, labelled, with its unit and (for differences) its sign."""
    ev = fact.get("evidence", {})
    kind = kinds.registry().fact(fact["predicate"])
    for key in kind.related if kind else ():
        m, value = measures.measure(fact, key), ev.get(key)
        if m is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        sign = {1: "+", -1: "-"}.get(measures.shown_direction(value, m), "") if m.kind in ("pp", "rel") else ""
        unit = f" of {m.unit}" if m.kind == "share" and m.unit else ""
        return f"{m.label} {sign}{measures.render(value, m)}{unit}"
    return f"fact confidence {fmt_sig(fact['confidence'], 3)}"


def _phrase(fact: Mapping[str, Any]) -> str:
    if fact["predicate"] != "increases_probability_of":
        return kinds.registry().phrases[fact["predicate"]]
    lift = fact.get("evidence", {}).get("lift")
    m = measures.measure(fact, "lift")
    way = measures.shown_direction(lift, m) if isinstance(lift, (int, float)) and m else 0
    return {1: "is associated with a higher rate of", -1: "is associated with a lower rate of"}.get(
        way, "is associated with a similar rate of")


def _window_note(fact: Mapping[str, Any], finding: Mapping[str, Any]) -> str:
    if fact.get("provenance", {}).get("snapshot_id") == finding.get("snapshot_id"):
        return ""
    return f" in the window {fact['valid_from'][:10]} to {fact['valid_to'][:10]}"


def _related(p: Plan) -> None:
    """Up to three related facts, one sentence each, never restating a claim already made."""
    said = {(p.finding["subject"], p.finding["predicate"], p.finding["object"])}
    for fact in p.bundle["facts"][1:]:
        if len(said) > MAX_RELATED_SENTENCES:
            break
        triple = (fact["subject"], fact["predicate"], fact["object"])
        if triple in said:
            continue
        said.add(triple)
        ev, fid = fact.get("evidence", {}), fact["fact_id"]
        subj, obj, when = entity(fact["subject"]), entity(fact["object"]), _window_note(fact, p.finding)
        if fact["predicate"] == "transitions_to" and all(k in ev for k in ("probability", "count", "from_total")):
            p.say(f"Related: {subj} is followed by {obj} in {fmt_pct(ev['probability'])} of moves out of it "
                  f"({fmt_count(ev['count'])} of {fmt_count(ev['from_total'])} moves){when}.", fid)
        else:
            p.say(f"Related: {subj} {_phrase(fact)} {obj} ({_headline(fact)}){when}.", fid)


def narrate(bundle: Mapping[str, Any]) -> Narrative:
    """The template narrative for a grounded bundle."""
    plan = Plan(bundle)
    recommendation = kinds.registry().finding(plan.finding["type"]).plan(plan)
    f = plan.finding
    plan.say(f"Confidence is {f['confidence_label']} (n = {plan.v('n')}, "
             f"q-value {_q(f['q_value'])}); this describes an association in the data.")
    if plan.ev.get("first_order_approximation") and any("model" in s.text for s in plan.sentences):
        plan.say("The model's numbers are first-order approximations here: the model check finds that where journeys "
                 "go next also depends on the steps before the current one.")
    _related(plan)
    return Narrative(tuple(plan.sentences), Sentence(recommendation, (plan.head,)))


def _q(value: float) -> str:
    text = fmt_pvalue(value)
    return text if text.startswith("<") else f"= {text}"
