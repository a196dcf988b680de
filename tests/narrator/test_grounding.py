"""Grounding validation: inconsistent bundles are refused, never narrated, and the reason is stored."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from narrator_factories import make_bundle
from wire_servers import Answer

from narrator.bundle import bundle_hash
from narrator.grounding import grounding_issues, require_grounded
from narrator.narrate import narrate_bundle
from ontology.errors import GroundingError


def _mutate(bundle: dict[str, Any], finding: dict[str, Any] | None = None, evidence: dict[str, Any] | None = None,
            fact_index: int | None = None, rehash: bool = True) -> dict[str, Any]:
    """Change the finding (and its primary fact's evidence) or one related fact; keep the hash honest."""
    out = copy.deepcopy(bundle)
    out["finding"].update(finding or {})
    if evidence:
        targets = [out["facts"][fact_index]] if fact_index is not None else [out["finding"], out["facts"][0]]
        for t in targets:
            t["evidence"].update(evidence)
    if rehash:
        out["bundle_hash"] = bundle_hash(out)
    return out


@pytest.fixture(scope="module")
def b():
    return make_bundle("activation_driver")


def test_fixture_bundles_are_grounded():
    for ftype in ("activation_driver", "regression", "segment_divergence", "necessary_for_conversion"):
        assert grounding_issues(make_bundle(ftype)) == []


@pytest.mark.parametrize("change, rule", [
    ({"evidence": {"lift": 3.5}}, "LIFT_INCONSISTENT"),
    ({"evidence": {"lift": 4.6914}}, "LIFT_INCONSISTENT"),
    ({"evidence": {"p_given_reached": 1.2}}, "PROBABILITY_RANGE"),
    ({"evidence": {"reach": -0.1}}, "PROBABILITY_RANGE"),
    ({"evidence": {"removal_effect": 0.9}}, "REMOVAL_INCONSISTENT"),
    ({"evidence": {"removal_effect_relative": 1.4}}, "REMOVAL_INCONSISTENT"),
    ({"evidence": {"n_reached": 5000}}, "COUNT_RANGE"),
    ({"finding": {"n": 12}}, "SAMPLE_TOO_SMALL"),
    ({"finding": {"q_value": None}}, "Q_VALUE_MISSING"),
    ({"finding": {"q_value": 0.0001, "p_value": 0.01}}, "Q_VALUE_INCONSISTENT"),
    ({"finding": {"confidence_label": "Very high"}}, "CONFIDENCE_LABEL"),
    ({"evidence": {"probability": 0.9}, "fact_index": 1}, "PROBABILITY_INCONSISTENT"),
    ({"evidence": {"count": 5000}, "fact_index": 1}, "COUNT_RANGE"),
    ({"rehash": False, "finding": {"n": 1801}}, "BUNDLE_HASH"),
], ids=["lift-off", "lift-off-in-3rd-decimal", "p-above-1", "reach-negative", "removal-above-baseline",
        "relative-removal-above-1", "n-reached-above-n", "n-below-minimum", "q-missing", "q-below-p",
        "unknown-label", "transition-probability", "transition-count", "edited-without-rehash"])
def test_inconsistent_bundles_are_refused(b, change, rule):
    bad = _mutate(b, **change)
    assert rule in {i.rule for i in grounding_issues(bad)}
    with pytest.raises(GroundingError, match=rule):
        require_grounded(bad)


def test_lift_within_rounding_is_accepted(b):
    # 0.576923 / 0.123 = 4.69043...; any lift inside the rounding interval of its inputs passes
    assert grounding_issues(_mutate(b, evidence={"lift": 4.690432})) == []


def test_lift_with_zero_denominator_must_be_absent():
    bad = _mutate(make_bundle("necessary_for_conversion"), evidence={"lift": 9.9})
    assert "LIFT_UNDEFINED" in {i.rule for i in grounding_issues(bad)}


@pytest.mark.parametrize("ftype, change, rule", [
    ("regression", {"delta": 0.3}, "DIFFERENCE_INCONSISTENT"),
    ("regression", {"relative_change": -0.1}, "RELATIVE_INCONSISTENT"),
    ("segment_divergence", {"jsd": 1.5}, "PROBABILITY_RANGE"),
], ids=["delta", "relative-change", "jsd-range"])
def test_type_specific_consistency(ftype, change, rule):
    assert rule in {i.rule for i in grounding_issues(_mutate(make_bundle(ftype), evidence=change))}


def test_ungrounded_bundle_is_never_sent_to_the_llm(server, make_llm, b):
    server.script(Answer("{}"))
    insight = narrate_bundle(_mutate(b, evidence={"lift": 3.5}), make_llm())

    assert server.requests == []
    assert insight.status == "ungrounded"
    assert insight.narrative["sentences"] == [] and insight.fact_ids == ()
    assert "LIFT_INCONSISTENT" in insight.narrative["text"]  # shown
    assert any("LIFT_INCONSISTENT" in r for r in insight.grounding["reasons"])  # stored
