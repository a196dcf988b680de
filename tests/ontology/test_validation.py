"""JSON Schemas: every artifact kind, per-predicate evidence, error messages naming the JSON path."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from ontology import vocabulary
from ontology.errors import EvidenceError, OntologyError
from ontology.model import Fact
from ontology.validation import _fast, errors, schemas, validate, validate_evidence, validate_fact, validator
from tests.ontology.conftest import SAMPLES, make_fact


@pytest.mark.parametrize("kind", sorted(schemas()))
def test_every_shipped_schema_is_valid_draft_2020_12(kind: str) -> None:
    schema = schemas()[kind]
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_predicate_has_an_evidence_schema() -> None:
    assert {k.split("/", 1)[1] for k in schemas() if k.startswith("evidence/")} == set(vocabulary.PREDICATES)


@pytest.mark.parametrize("predicate", sorted(SAMPLES))
def test_detector_shaped_evidence_is_accepted(predicate: str) -> None:
    validate_fact(make_fact(predicate))


BAD_EVIDENCE = [
    ("is_activation_driver_for", {"lift": -1}, "evidence.lift: -1 is less than the minimum of 0"),
    ("is_activation_driver_for", {"reach": 1.5}, "evidence.reach: 1.5 is greater than the maximum of 1"),
    ("is_activation_driver_for", {"n": 12.5}, "evidence.n: 12.5 is not of type 'integer'"),
    ("is_activation_driver_for", {"n": -3}, "evidence.n: -3 is less than the minimum of 0"),
    ("is_activation_driver_for", {"q_value": "0.01"}, "evidence.q_value: '0.01' is not of type 'number'"),
    ("transitions_to", {"probability": 1.2}, "evidence.probability: 1.2 is greater than the maximum of 1"),
    ("transitions_to", {"count": True}, "evidence.count: True is not of type 'integer'"),
    ("necessary_for_conversion", {"p_given_not_reached": 0.1}, "evidence.p_given_not_reached: 0.1 is greater than the maximum of 0"),
    ("regressed_after", {"attribution": "cause"}, "evidence.attribution: 'cause' is not one of"),
    ("regressed_after", {"releases": ["v1", 2]}, "evidence.releases[1]: 2 is not of type 'string'"),
    ("diverges_from", {"p_value": -0.1}, "evidence.p_value: -0.1 is less than the minimum of 0"),
    ("is_fast_path_to", {"share": 2}, "evidence.share: 2 is greater than the maximum of 1"),
]


@pytest.mark.parametrize(("predicate", "change", "expected"), BAD_EVIDENCE,
                         ids=[f"{p}-{next(iter(c))}" for p, c, _ in BAD_EVIDENCE])
def test_bad_evidence_names_the_json_path(predicate: str, change: dict[str, Any], expected: str) -> None:
    fact = make_fact(predicate, **change)
    with pytest.raises(EvidenceError) as info:
        validate_fact(fact)
    assert expected in str(info.value)


@pytest.mark.parametrize("missing", ["journey", "p_value", "removal_effect"])
def test_missing_required_evidence_key_is_named(missing: str) -> None:
    _, _, evidence = SAMPLES["is_activation_driver_for"]
    payload = {k: v for k, v in evidence.items() if k != missing}
    with pytest.raises(EvidenceError, match=f"'{missing}' is a required property"):
        validate_evidence("is_activation_driver_for", payload)


BAD_FACTS = [
    ("object-class", dict(predicate="transitions_to", obj="journey:activation"), "needs a object of class Outcome or State"),
    ("subject-class", dict(predicate="is_fast_path_to", subject="state:x"), "needs a subject of class Path"),
    ("bad-entity", dict(predicate="transitions_to", obj="user:42"), "bad entity id 'user:42'"),
]


@pytest.mark.parametrize(("case", "kwargs", "expected"), BAD_FACTS, ids=[c for c, _, _ in BAD_FACTS])
def test_domain_and_range_are_enforced(case: str, kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(OntologyError, match=expected):
        validate_fact(make_fact(**kwargs))


def test_tampered_fact_id_is_refused() -> None:
    fact = make_fact()
    forged = Fact.from_dict({**fact.to_dict(), "confidence": 0.5})  # keeps the old id
    with pytest.raises(OntologyError, match="does not match its content"):
        validate_fact(forged)


def test_bad_validity_window_is_refused_with_path() -> None:
    fact = Fact.from_dict({**make_fact().to_dict(), "valid_from": "yesterday", "fact_id": ""})
    with pytest.raises(OntologyError, match="valid_from: 'yesterday' does not match"):
        validate_fact(fact)


FEED_ITEM = {
    "insight_id": "a" * 24, "rank": 1, "score": 0.845,
    "finding": {"finding_id": "b" * 24, "type": "activation_driver", "detector": "activation_driver@1",
                "journey": "activation", "subject": "state:import_data", "predicate": "is_activation_driver_for",
                "object": "outcome:converted", "segment": None, "release": None, "snapshot_id": "c" * 24,
                "confidence": 0.93, "confidence_label": "High", "p_value": 0.0001, "q_value": 0.0004, "evidence": {"lift": 3.2}},
    "narrative": {"text": "x", "backend": "template", "sentences": [{"text": "x", "fact_ids": ["d" * 24]}]},
    "fact_ids": ["d" * 24],
}
RUN = {"events_read": 10, "accepted": 7, "quarantined": {"total": 1, "by_reason": {"bad_timestamp": 1}}, "duplicates": 1,
       "bots_filtered": 1, "late_rejected": 0, "actors": 3, "journeys": 3, "censored": 0, "snapshots": 2,
       "findings": 4, "facts": 9, "insights": 4, "seconds": 0.5}
INSIGHT = {"insight_id": "a" * 24, "finding_id": "b" * 24, "bundle_hash": "h", "fact_ids": ["d" * 24], "usage": None,
           "narrative": {"text": "x", "backend": "anthropic", "model": "claude", "prompt_version": "3",
                         "sentences": [{"text": "x", "fact_ids": ["d" * 24]}]}}
ARTIFACTS = [
    ("feed_item", FEED_ITEM, {"rank": 0}, "rank: 0 is less than the minimum of 1"),
    ("feed_item", FEED_ITEM, {"score": 1.2}, "score: 1.2 is greater than the maximum of 1"),
    ("run", RUN, {"duplicates": -1}, "duplicates"),
    ("insight", INSIGHT, {"narrative": {**INSIGHT["narrative"], "backend": "gpt"}}, "narrative.backend: 'gpt' is not one of"),
]


@pytest.mark.parametrize(("kind", "good", "change", "expected"), ARTIFACTS,
                         ids=[f"{k}-{next(iter(c))}" for k, _, c, _ in ARTIFACTS])
def test_artifact_schemas_accept_the_contract_shape_and_name_the_path(kind: str, good: dict[str, Any],
                                                                      change: dict[str, Any], expected: str) -> None:
    validate(kind, good)
    with pytest.raises(OntologyError) as info:
        validate(kind, {**good, **change})
    assert expected in str(info.value)


def test_feed_item_finding_is_checked_through_its_ref() -> None:
    item = {**FEED_ITEM, "finding": {**FEED_ITEM["finding"], "confidence_label": "Certain"}}
    assert errors("feed_item", item)[0].startswith("finding.confidence_label: 'Certain' is not one of")


def test_bundle_checks_each_fact() -> None:
    fact = make_fact().to_dict()
    validate("bundle", {"finding": FEED_ITEM["finding"], "facts": [fact]})
    problems = errors("bundle", {"finding": FEED_ITEM["finding"], "facts": [{**fact, "predicate": "causes"}]})
    assert problems and problems[0].startswith("facts[0].predicate")


def test_unknown_kind_lists_known_ones() -> None:
    with pytest.raises(ValueError, match="known kinds: bundle"):
        validator("nope")


# The fast acceptance predicate must never accept what jsonschema rejects.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2, allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=6,
)


@pytest.mark.parametrize("kind", ["evidence/is_activation_driver_for", "evidence/regressed_after", "evidence/is_revisited_in", "fact"])
@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_fast_path_never_accepts_what_jsonschema_rejects(kind: str, data: st.DataObject) -> None:
    schema = schemas()[kind]
    base = SAMPLES["is_activation_driver_for"][2] if kind.startswith("evidence") else make_fact().to_dict()
    if kind == "evidence/regressed_after":
        base = SAMPLES["regressed_after"][2]
    if kind == "evidence/is_revisited_in":
        base = SAMPLES["is_revisited_in"][2]
    key = data.draw(st.sampled_from(sorted(schema.get("properties", {}))))
    obj = {**base, key: data.draw(json_values)}
    fast = _fast(kind)
    assert fast is not None
    if fast(obj):
        assert validator(kind).is_valid(obj), (key, obj[key])


SNAPSHOT_JSON = {
    "snapshot_id": "s1", "journey": "activation", "window": {"start": "2026-01-01T00:00:00Z", "end": "2026-02-01T00:00:00Z"},
    "journeys": 100, "censored": 4,
    "states": [{"state": "sign_up", "reach": 1.0, "visits_mean": 1.2, "exit_probability": 0.46, "expected_steps": 2.07,
                "absorption": {"converted": 0.1649, "dropped": 0.8351}, "p_outcome_given_reached": {"converted": 0.16},
                "lift": {"converted": None}, "removal_effect": {"converted": None}, "removal_effect_relative": {"converted": None}}],
    "transitions": [{"from": "sign_up", "to": "feature_used", "count": 52, "probability": 0.52}],
}


def test_snapshot_json_schema() -> None:
    validate("snapshot", SNAPSHOT_JSON)
    bad = {**SNAPSHOT_JSON, "transitions": [{"from": "a", "to": "b", "count": 3, "probability": 1.5}]}
    with pytest.raises(OntologyError, match=r"transitions\[0\].probability: 1.5 is greater than the maximum of 1"):
        validate("snapshot", bad)
