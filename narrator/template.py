"""The template narrator: deterministic, offline, the default backend.

One sentence plan per finding type (all nine in ontology.vocabulary.FINDING_TYPES),
numbers formatted by narrator.numbers (so the checker always reads them back),
associative verbs only, names quoted as data, every sentence citing the facts
whose numbers it uses, the confidence label and sample size stated, and one
concrete recommendation last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from narrator import measures
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


class _Plan:
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


def _reach(p: _Plan) -> None:
    """Reach as a share of journeys, with its journey count and, when the evidence has it, the journey total."""
    if not p.has("reach", "n_reached"):
        return
    whole = "n" if measures.n_unit(p.finding) == "journeys" else "n_journeys" if p.has("n_journeys") else None
    counts = f"{fmt_count(p.ev['n_reached'])} of {p.v(whole)}" if whole else p.v("n_reached")
    p.say(f"{p.subject} is reached by {p.v('reach')} of journeys ({counts}).")


def _removal(p: _Plan) -> None:
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


def _activation_driver(p: _Plan) -> str:
    if p.has("p_given_reached", "p_given_not_reached", "lift"):
        p.say(f"Journeys that reach {p.subject} end in {p.object} {p.v('p_given_reached')} of the time, "
              f"against {p.v('p_given_not_reached')} for journeys that skip it, a lift of {p.v('lift')}.")
    _reach(p)
    _removal(p)
    if p.has("removal_effect") and measures.shown_direction(p.ev["removal_effect"], p.m("removal_effect")) < 0:
        return (f"Investigate what journeys that reach {p.subject} have in common before moving it, since the "
                "chain model gives it a negative absolute removal effect.")
    return f"Consider surfacing {p.subject} earlier in the {p.journey} journey and test that change in a controlled experiment."


def _necessary(p: _Plan) -> str:
    if p.has("p_given_reached", "p_given_not_reached"):
        p.say(f"Journeys that skip {p.subject} end in {p.object} in {p.v('p_given_not_reached')} of cases, "
              f"against {p.v('p_given_reached')} for journeys that pass through it.")
    _reach(p)
    return f"Investigate how users who do not reach {p.subject} could be routed to it, and monitor its reach."


def _dropoff(p: _Plan) -> str:
    states = p.ev.get("states") if isinstance(p.ev.get("states"), list) else None
    where = " → ".join(q(s) for s in states) if states else p.subject
    outcome = q(p.ev.get("dropoff_outcome", "dropped"))
    if states:
        p.say(f"The consecutive states {where} form a drop-off cluster in the {p.journey} journey.")
    if p.has("exit_probability"):
        counts = f" ({fmt_count(p.ev['exits'])} of {p.v('n')})" if p.has("exits") else ""
        other = f", against {p.v('baseline_exit')} of moves out of other states" if p.has("baseline_exit") else ""
        p.say(f"{p.v('exit_probability')} of the moves out of {where} go straight to {outcome}{counts}{other}.")
    if p.has("loss_share", "lost_journeys") and not states:
        p.say(f"{p.v('loss_share')} of all lost journeys end right after {where} "
              f"({p.v('lost_journeys')} lost in all).")
    _reach(p)
    return f"Review the experience at {where} with session recordings or user interviews to find where users stall."


def _regression(p: _Plan) -> str:
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


def _divergence(p: _Plan) -> str:
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
        p.say(f"The comparison covers {scope}: {p.v('n_segment')} in the segment and {p.v('n_rest')} in the rest.")
    return "Compare the segment's journeys with the rest in session recordings and test a tailored flow for it."


def _repeated(p: _Plan) -> str:
    if p.has("visits_mean", "n_repeat", "n_reached"):
        p.say(f"Journeys that reach {p.subject} visit it {fmt_sig(p.ev['visits_mean'], 3)} times on average, "
              f"and {fmt_count(p.ev['n_repeat'])} of {p.v('n_reached')} come back to it more than once.")
    if p.has("p_convert_repeat", "p_convert_single"):
        p.say(f"Repeat visitors convert {p.v('p_convert_repeat')} of the time against "
              f"{p.v('p_convert_single')} for single visits.")
    if p.has("conversion_gap"):
        p.say(f"Repeat visitors convert {p.way('conversion_gap', p.v('conversion_gap') + ' less often', p.v('conversion_gap') + ' more often', 'as often')}"
              " than single visitors.")
    if p.has("extra_expected_steps"):
        p.say(f"Revisits are associated with {fmt_sig(p.ev['extra_expected_steps'], 3)} extra expected steps.")
    if p.has("conversion_gap") and float(p.ev["conversion_gap"]) < 0:
        return f"Investigate what brings users back to {p.subject} using session recordings before changing the step."
    return f"Investigate why users return to {p.subject} using session recordings, and simplify the step if it confuses them."


def _path(p: _Plan, fast: bool) -> str:
    if p.has("count", "share"):
        p.say(f"The path {p.subject} is followed by {p.v('count')} ({p.v('share')} of journeys).")
    if p.has("conversion_rate"):
        p.say(f"Journeys on this path convert {p.v('conversion_rate')} of the time.")
    if p.has("median_length", "median_duration_s"):
        p.say(f"They take a median of {p.v('median_length')} and {p.v('median_duration_s')}.")
    if p.has("quality"):
        p.say(f"Its path quality score is {p.v('quality')} (one means typical length, duration and conversion).")
    if fast:
        return "Consider guiding new users along this path and test whether onboarding hints toward it help."
    if p.has("conversion_rate") and float(p.ev["conversion_rate"]) == 0.0:
        return "Investigate why no journey on this path converts and review the steps where it ends."
    return "Investigate the slow steps on this path and test a shorter route for the journeys that take it."


PLANS: dict[str, Callable[[_Plan], str]] = {
    "activation_driver": _activation_driver,
    "necessary_for_conversion": _necessary,
    "dropoff_point": _dropoff,
    "dropoff_cluster": _dropoff,
    "regression": _regression,
    "segment_divergence": _divergence,
    "repeated_visit": _repeated,
    "fast_path": lambda p: _path(p, True),
    "slow_path": lambda p: _path(p, False),
}

RELATED_KEYS: dict[str, tuple[str, ...]] = {
    "increases_probability_of": ("lift",), "is_activation_driver_for": ("lift",), "necessary_for_conversion": ("reach",),
    "is_dropoff_point_for": ("exit_probability",), "diverges_from": ("jsd",), "more_common_in": ("difference",),
    "less_common_in": ("difference",), "regressed_after": ("delta",), "changed_after": ("delta",),
    "is_revisited_in": ("visits_mean",), "is_fast_path_to": ("conversion_rate",),
    "associated_with": ("difference", "conversion_rate"),
}


def _headline(fact: Mapping[str, Any]) -> str:
    """The fact's own measure, labelled, with its unit and (for differences) its sign."""
    ev = fact.get("evidence", {})
    for key in RELATED_KEYS.get(fact["predicate"], ()):
        m, value = measures.measure(fact, key), ev.get(key)
        if m is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        sign = {1: "+", -1: "-"}.get(measures.shown_direction(value, m), "") if m.kind in ("pp", "rel") else ""
        unit = f" of {m.unit}" if m.kind == "share" and m.unit else ""
        return f"{m.label} {sign}{measures.render(value, m)}{unit}"
    return f"fact confidence {fmt_sig(fact['confidence'], 3)}"


def _phrase(fact: Mapping[str, Any]) -> str:
    if fact["predicate"] != "increases_probability_of":
        return measures.PREDICATE_PHRASES[fact["predicate"]]
    lift = fact.get("evidence", {}).get("lift")
    m = measures.measure(fact, "lift")
    way = measures.shown_direction(lift, m) if isinstance(lift, (int, float)) and m else 0
    return {1: "is associated with a higher rate of", -1: "is associated with a lower rate of"}.get(
        way, "is associated with a similar rate of")


def _window_note(fact: Mapping[str, Any], finding: Mapping[str, Any]) -> str:
    if fact.get("provenance", {}).get("snapshot_id") == finding.get("snapshot_id"):
        return ""
    return f" in the window {fact['valid_from'][:10]} to {fact['valid_to'][:10]}"


def _related(p: _Plan) -> None:
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
    plan = _Plan(bundle)
    recommendation = PLANS[plan.finding["type"]](plan)
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
