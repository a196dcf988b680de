"""Property: every sentence the template writes says what its evidence says.

Evidence is generated with negative, zero, tied, tiny and huge values (removal effects of either
sign, lifts of exactly 1, n from 30 to a billion); each rendered sentence is then checked against
the evidence directly (direction words, units, denominators, the sample size's population), the
whole narrative passes the checker as printed and as cited, and every mutation of it is rejected.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import MUTATIONS
from narrator_factories import SNAP, WINDOW, r6

from narrator import measures, template
from narrator.bundle import BundleLimits, ListFactSource, build_bundle
from narrator.checker import check
from narrator.grounding import grounding_issues
from narrator.numbers import fmt_count, fmt_pct
from ontology.model import Finding

PROPERTY = settings(max_examples=80, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
PROB = st.one_of(st.sampled_from([0.0, 1e-6, 0.5, 1.0]), st.floats(0.0, 1.0, allow_nan=False)).map(r6)
SIZES = st.one_of(st.sampled_from([30, 31, 1_000_000_000]), st.integers(30, 5_000_000))


def _finding(ftype: str, predicate: str, subject: str, obj: str, n: int, ev: dict[str, Any]) -> dict[str, Any]:
    finding = Finding(type=ftype, detector=f"{ftype}@1", journey="activation", subject=subject, predicate=predicate,
                      object=obj, snapshot_id=SNAP, n=n, effect=0.0, p_value=0.001, q_value=0.002, confidence=0.9,
                      confidence_label="Medium", evidence={**ev, "journey": "activation", "p_value": 0.001, "q_value": 0.002}, window=WINDOW,
                      reach=0.5, segment="plan=pro" if ftype == "segment_divergence" else None,
                      release="v2" if ftype == "regression" else None)
    return build_bundle(finding, ListFactSource(()), BundleLimits())


@st.composite
def drivers(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(SIZES)
    k = draw(st.integers(1, n - 1))
    pr = draw(PROB.filter(lambda p: p > 0))
    tie = draw(st.booleans())
    pn = pr if tie else draw(PROB.filter(lambda p: p > 0))
    base = draw(PROB)
    effect = r6(draw(st.sampled_from([0.0, 1e-6, -1e-6, base, base - 1.0]) | st.floats(base - 1.0, base)))
    rel = r6(draw(st.sampled_from([0.0, 1.0, -0.25]) | st.floats(-1.0, 1.0)))
    ev = {"reach": r6(k / n), "n_reached": k, "p_given_reached": pr, "p_given_not_reached": pn,
          "lift": r6(pr / pn), "baseline": base, "removal_effect": effect, "removal_effect_relative": rel}
    return _finding("activation_driver", "is_activation_driver_for", "state:import_data", "outcome:converted", n, ev)


@st.composite
def dropoffs(draw: st.DrawFn) -> dict[str, Any]:
    moves = draw(SIZES)
    exits = draw(st.integers(0, moves))
    journeys = draw(st.integers(30, 2_000_000_000))
    k = draw(st.integers(1, journeys))
    ev = {"exit_probability": r6(exits / moves), "exits": exits, "reach": r6(k / journeys), "n_reached": k,
          "dropoff_outcome": "dropped", "baseline_exit": draw(PROB)}
    if draw(st.booleans()):
        ev["n_journeys"] = journeys
    return _finding("dropoff_point", "is_dropoff_point_for", "state:billing_page", "journey:activation", moves, ev)


@st.composite
def segments(draw: st.DrawFn) -> dict[str, Any]:
    seg, rest = draw(PROB), draw(PROB)
    diff = r6(seg - rest)
    predicate = "more_common_in" if diff > 0 else "less_common_in"
    ev = {"reach_segment": seg, "reach_rest": rest, "difference": diff, "n_segment": draw(SIZES),
          "n_rest": draw(SIZES), "z": r6(draw(st.floats(-50, 50)))}
    return _finding("segment_divergence", predicate, "state:help_center", "segment:plan=pro",
                    ev["n_segment"] + ev["n_rest"], ev)


@st.composite
def regressions(draw: st.DrawFn) -> dict[str, Any]:
    before, after = draw(PROB.filter(lambda p: p > 0)), draw(PROB)
    delta = r6(after - before)
    nb, na = draw(SIZES), draw(SIZES)
    ev = {"p_before": before, "p_after": after, "n_before": nb, "n_after": na, "delta": delta,
          "relative_change": r6(delta / before), "z": r6(draw(st.floats(-30, 30)))}
    return _finding("regression", "regressed_after", "edge:import_data->invite_teammate", "release:v2", nb + na, ev)


@st.composite
def repeats(draw: st.DrawFn) -> dict[str, Any]:
    k = draw(SIZES)
    rep, single = draw(PROB), draw(PROB)
    ev = {"visits_mean": r6(draw(st.floats(1.0, 500.0))), "reach": draw(PROB), "n_reached": k,
          "n_repeat": draw(st.integers(0, k)), "p_convert_repeat": rep, "p_convert_single": single,
          "conversion_gap": r6(single - rep), "extra_expected_steps": r6(draw(st.floats(0.0, 40.0)))}
    return _finding("repeated_visit", "is_revisited_in", "state:settings", "journey:activation", k, ev)


BUNDLES = st.one_of(drivers(), dropoffs(), segments(), regressions(), repeats()).filter(
    lambda b: grounding_issues(b) == [])


def _sentence(text: str, marker: str) -> str:
    return next(s for s in re.split(r"(?<=[.!?])\s+", text) if marker in s)


def _direction(value: float, key: str, finding: dict[str, Any]) -> int:
    m = measures.measure(finding, key)
    assert m is not None
    return measures.shown_direction(value, m)


def _check_sentences(bundle: dict[str, Any], text: str) -> None:
    f = bundle["finding"]
    ev = f["evidence"]
    unit = measures.n_unit(f)
    assert f"n = {fmt_count(f['n'])} {unit}" in text  # the sample size with the population it counts
    if "removal_effect" in ev:
        s = _sentence(text, "absolute removal effect")
        word = {1: "less often than", -1: "more often than", 0: "as often as"}[_direction(ev["removal_effect"],
                                                                                          "removal_effect", f)]
        assert word in s, (ev["removal_effect"], s)
        rel = _sentence(text, "relative removal effect")
        assert "relative removal effect" not in s and "absolute removal effect" not in rel  # two measures, two sentences
    if "delta" in ev:
        word = {1: "higher", -1: "lower", 0: "no different"}[_direction(ev["delta"], "delta", f)]
        assert f"That is {fmt_pct(ev['delta'])[:-1] + ' percentage points ' if word != 'no different' else ''}{word}" in text
    if "conversion_gap" in ev:
        word = {1: "less often", -1: "more often", 0: "as often"}[_direction(ev["conversion_gap"], "conversion_gap", f)]
        assert f"Repeat visitors convert {'' if word == 'as often' else fmt_pct(ev['conversion_gap'])[:-1] + ' percentage points '}{word} than" in text
    if "difference" in ev:
        word = {1: "higher", -1: "lower", 0: "no different"}[_direction(ev["difference"], "difference", f)]
        assert _sentence(text, "The segment's share").rstrip(".").endswith(f"{word} than elsewhere")
    if "n_reached" in ev and "reach" in ev and "visits_mean" not in ev:  # a journey share over a journey total only
        s = _sentence(text, "is reached by")
        whole = f["n"] if unit == "journeys" else ev.get("n_journeys")
        counted = measures.render(ev["n_reached"], measures.Measure("count", "journeys"))
        expected = f"({fmt_count(ev['n_reached'])} of {fmt_count(whole)} journeys)" if whole else f"({counted})"
        assert s.endswith(expected + "."), (s, expected)


@PROPERTY
@given(BUNDLES)
def test_each_sentence_states_its_evidence(bundle: dict[str, Any]) -> None:
    narrative = template.narrate(bundle)
    _check_sentences(bundle, narrative.text)
    assert check(bundle, narrative.text).ok, check(bundle, narrative.text).failures
    assert check(bundle, narrative.marked_text()).ok


@settings(max_examples=30, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(BUNDLES)
def test_every_mutation_of_a_generated_narrative_is_rejected(bundle: dict[str, Any]) -> None:
    text = template.narrate(bundle).text
    for name, mutate in MUTATIONS.items():
        for description, mutated in mutate(text, bundle):
            if mutated != text and not _same_claim(description, bundle):
                assert not check(bundle, mutated).ok, (name, description, mutated)


def _same_claim(description: str, bundle: dict[str, Any]) -> bool:
    """Ties change nothing a reader could check: two numbers that render alike trade places, or points
    become a percentage that another field of the evidence holds (a 100-point fall is also a 100% fall)."""
    parts = re.findall(r"[\d.,]+%?", description)
    if description.startswith("unit ") and description.endswith("-> %"):
        written = parts[0].rstrip("%") + "%"
        return any(fmt_pct(v) == written for v in bundle["finding"]["evidence"].values()
                   if isinstance(v, (int, float)) and not isinstance(v, bool))
    return len(parts) == 2 and parts[0] == parts[1]
