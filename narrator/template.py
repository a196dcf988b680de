"""The template narrator: deterministic, offline, the default backend.

One sentence plan per finding type (all nine in ontology.vocabulary.FINDING_TYPES),
numbers formatted by narrator.numbers (so the checker always reads them back),
associative verbs only, names quoted as data, every sentence citing the facts
whose numbers it uses, the confidence label and sample size stated, and one
concrete recommendation last.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from narrator.bundle import clean_name, entity_states, local_name, primary_fact_id
from narrator.checker import Narrative, Sentence
from narrator.numbers import fmt_count, fmt_pct, fmt_pvalue, fmt_ratio, fmt_seconds, fmt_sig

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


def num(x: float | int) -> str:
    """Counts and whole numbers exactly, other values to three significant digits."""
    if isinstance(x, int) or float(x).is_integer():
        return fmt_count(x)
    return fmt_sig(x, 3)


class _Plan:
    """Accumulates sentences for one bundle; every sentence names the facts it used."""

    def __init__(self, bundle: Mapping[str, Any]) -> None:
        self.bundle = bundle
        self.finding = bundle["finding"]
        self.ev: Mapping[str, Any] = self.finding.get("evidence", {})
        self.head = primary_fact_id(bundle)
        self.sentences: list[Sentence] = []

    def has(self, *keys: str) -> bool:
        return all(isinstance(self.ev.get(k), (int, float)) and not isinstance(self.ev.get(k), bool) for k in keys)

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


def _activation_driver(p: _Plan) -> str:
    ev = p.ev
    if p.has("p_given_reached", "p_given_not_reached", "lift"):
        p.say(f"Journeys that reach {p.subject} end in {p.object} {fmt_pct(ev['p_given_reached'])} of the time, "
              f"against {fmt_pct(ev['p_given_not_reached'])} for journeys that skip it, a lift of {fmt_ratio(ev['lift'])}.")
    if p.has("reach", "n_reached"):
        p.say(f"{p.subject} is reached by {fmt_pct(ev['reach'])} of journeys ({fmt_count(ev['n_reached'])} of {fmt_count(p.finding['n'])}).")
    if p.has("removal_effect", "baseline"):
        rel = f", {fmt_pct(ev['removal_effect_relative'])} in relative terms" if p.has("removal_effect_relative") else ""
        p.say(f"In the absorbing-chain model, journeys without {p.subject} reach {p.object} "
              f"{fmt_pct(ev['removal_effect'])[:-1]} percentage points less often than the {fmt_pct(ev['baseline'])} baseline "
              f"(removal effect{rel}).")
    return f"Consider surfacing {p.subject} earlier in the {p.journey} journey and test that change in a controlled experiment."


def _necessary(p: _Plan) -> str:
    ev = p.ev
    if p.has("p_given_reached", "p_given_not_reached"):
        p.say(f"Journeys that skip {p.subject} reach {p.object} in {fmt_pct(ev['p_given_not_reached'])} of cases, "
              f"against {fmt_pct(ev['p_given_reached'])} for journeys that pass through it.")
    if p.has("reach", "n_reached"):
        p.say(f"{p.subject} is reached by {fmt_pct(ev['reach'])} of journeys ({fmt_count(ev['n_reached'])} of {fmt_count(p.finding['n'])}).")
    return f"Investigate how users who do not reach {p.subject} could be routed to it, and monitor its reach."


def _dropoff(p: _Plan) -> str:
    ev = p.ev
    states = ev.get("states") if isinstance(ev.get("states"), list) else None
    where = " → ".join(q(s) for s in states) if states else p.subject
    outcome = q(ev.get("dropoff_outcome", "dropped"))
    if states:
        p.say(f"The consecutive states {where} form a drop-off cluster in the {p.journey} journey.")
    if p.has("exit_probability"):
        p.say(f"Of the moves out of {p.subject}, {fmt_pct(ev['exit_probability'])} go straight to {outcome}.")
    if p.has("reach", "n_reached"):
        p.say(f"{p.subject} is reached by {fmt_pct(ev['reach'])} of journeys ({fmt_count(ev['n_reached'])} of {fmt_count(p.finding['n'])}).")
    return f"Review the experience at {where} with session recordings or user interviews to find where users stall."


def _regression(p: _Plan) -> str:
    ev = p.ev
    if p.has("p_before", "p_after", "n_before", "n_after"):
        p.say(f"The rate of {p.subject} moved from {fmt_pct(ev['p_before'])} (n = {fmt_count(ev['n_before'])}) "
              f"to {fmt_pct(ev['p_after'])} (n = {fmt_count(ev['n_after'])}) after {p.object}.")
    if p.has("delta", "relative_change"):
        direction = "lower" if float(ev["delta"]) < 0 else "higher"
        p.say(f"That is {fmt_pct(ev['delta'])[:-1]} percentage points {direction}, "
              f"{fmt_pct(ev['relative_change'])} {direction} in relative terms.")
    if p.has("z"):
        sign = "-" if float(ev["z"]) < 0 else ""
        p.say(f"A two-proportion test gives z = {sign}{fmt_sig(ev['z'], 3)}.")
    attribution = ev.get("attribution")
    if attribution == "ambiguous":
        p.say("Several releases fall inside the comparison window, so the change is not tied to a single release.")
    if ev.get("traffic_changed") is True and p.has("traffic_before", "traffic_after"):
        p.say(f"Traffic into this step also shifted, from {num(ev['traffic_before'])} to {num(ev['traffic_after'])}.")
    return f"Investigate the changes shipped around {p.object} that touch {p.subject}, and compare the step before and after."


def _divergence(p: _Plan) -> str:
    ev = p.ev
    if p.has("jsd"):
        state = f" on leaving {q(ev['state'])}" if ev.get("state") else ""
        test = f" ({q(ev['test'])} test)" if ev.get("test") else ""
        p.say(f"Journeys in {p.subject} move differently from the rest{state}: Jensen-Shannon divergence {fmt_sig(ev['jsd'], 3)}{test}.")
    if p.has("reach_segment", "reach_rest"):
        word = "more" if p.finding["predicate"] == "more_common_in" else "less"
        diff = f", {fmt_pct(ev['difference'])[:-1]} percentage points {word}" if p.has("difference") else ""
        p.say(f"{p.subject} is reached by {fmt_pct(ev['reach_segment'])} of journeys in {p.object} "
              f"against {fmt_pct(ev['reach_rest'])} elsewhere{diff}.")
    if p.has("n_segment", "n_rest"):
        p.say(f"The comparison covers {fmt_count(ev['n_segment'])} journeys in the segment and {fmt_count(ev['n_rest'])} in the rest.")
    return "Compare the segment's journeys with the rest in session recordings and test a tailored flow for it."


def _repeated(p: _Plan) -> str:
    ev = p.ev
    if p.has("visits_mean", "n_repeat", "n_reached"):
        p.say(f"Journeys that reach {p.subject} visit it {fmt_sig(ev['visits_mean'], 3)} times on average, "
              f"and {fmt_count(ev['n_repeat'])} of {fmt_count(ev['n_reached'])} come back to it more than once.")
    if p.has("p_convert_repeat", "p_convert_single"):
        gap = f" (a gap of {fmt_pct(ev['conversion_gap'])[:-1]} percentage points)" if p.has("conversion_gap") else ""
        p.say(f"Repeat visitors convert {fmt_pct(ev['p_convert_repeat'])} of the time against "
              f"{fmt_pct(ev['p_convert_single'])} for single visits{gap}.")
    if p.has("extra_expected_steps"):
        p.say(f"Revisits are associated with {fmt_sig(ev['extra_expected_steps'], 3)} extra expected steps.")
    return f"Investigate why users return to {p.subject} using session recordings, and simplify the step if it confuses them."


def _path(p: _Plan, fast: bool) -> str:
    ev = p.ev
    if p.has("count", "share"):
        p.say(f"The path {p.subject} is followed by {num(ev['count'])} journeys ({fmt_pct(ev['share'])} of journeys).")
    if p.has("conversion_rate"):
        p.say(f"Journeys on this path convert {fmt_pct(ev['conversion_rate'])} of the time.")
    if p.has("median_length", "median_duration_s"):
        p.say(f"They take a median of {num(ev['median_length'])} steps and {fmt_seconds(ev['median_duration_s'])}.")
    if p.has("quality"):
        p.say(f"Its path quality score is {fmt_sig(ev['quality'], 3)}.")
    if fast:
        return "Consider guiding new users along this path and test whether onboarding hints toward it help."
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

PHRASES = {
    "transitions_to": "is followed by", "increases_probability_of": "is associated with a higher rate of",
    "is_activation_driver_for": "is an activation driver for", "necessary_for_conversion": "precedes every case of",
    "is_dropoff_point_for": "is a drop-off point in", "diverges_from": "differs from",
    "more_common_in": "is more common in", "less_common_in": "is less common in",
    "regressed_after": "regressed after", "changed_after": "changed after", "is_revisited_in": "is often revisited in",
    "is_fast_path_to": "is a fast path to", "associated_with": "is associated with",
}


HEADLINES: dict[str, tuple[tuple[str, str, Callable[[float], str]], ...]] = {
    "increases_probability_of": (("lift", "lift", fmt_ratio),),
    "is_activation_driver_for": (("lift", "lift", fmt_ratio),),
    "necessary_for_conversion": (("reach", "reach", fmt_pct),),
    "is_dropoff_point_for": (("exit_probability", "exit probability", fmt_pct),),
    "diverges_from": (("jsd", "Jensen-Shannon divergence", lambda v: fmt_sig(v, 3)),),
    "more_common_in": (("reach_segment", "reach in the segment", fmt_pct),),
    "less_common_in": (("reach_segment", "reach in the segment", fmt_pct),),
    "regressed_after": (("p_before", "from", fmt_pct), ("p_after", "to", fmt_pct)),
    "changed_after": (("p_before", "from", fmt_pct), ("p_after", "to", fmt_pct)),
    "is_revisited_in": (("visits_mean", "mean visits", lambda v: fmt_sig(v, 3)),),
    "is_fast_path_to": (("conversion_rate", "conversion", fmt_pct),),
}


def _headline(fact: Mapping[str, Any]) -> str:
    ev = fact.get("evidence", {})
    spec = HEADLINES.get(fact["predicate"], ())
    if spec and all(isinstance(ev.get(k), (int, float)) and not isinstance(ev.get(k), bool) for k, _, _ in spec):
        return " ".join(f"{label} {fmt(ev[k])}" for k, label, fmt in spec)
    return f"fact confidence {fmt_sig(fact['confidence'], 3)}"


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
            p.say(f"Related: {subj} is followed by {obj} in {fmt_pct(ev['probability'])} of moves "
                  f"({fmt_count(ev['count'])} of {fmt_count(ev['from_total'])}){when}.", fid)
        else:
            p.say(f"Related: {subj} {PHRASES[fact['predicate']]} {obj} ({_headline(fact)}){when}.", fid)


def narrate(bundle: Mapping[str, Any]) -> Narrative:
    """The template narrative for a grounded bundle."""
    plan = _Plan(bundle)
    recommendation = PLANS[plan.finding["type"]](plan)
    f = plan.finding
    plan.say(f"Confidence is {f['confidence_label']} (n = {fmt_count(f['n'])} journeys, "
             f"q-value {_q(f['q_value'])}); this describes an association in the data.")
    _related(plan)
    return Narrative(tuple(plan.sentences), Sentence(recommendation, (plan.head,)))


def _q(value: float) -> str:
    text = fmt_pvalue(value)
    return text if text.startswith("<") else f"= {text}"
