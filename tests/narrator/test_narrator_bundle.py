"""Fact bundles: selection (one hop, window, confidence), bound, order, determinism, hash, schema."""

from __future__ import annotations

import hashlib
import random
from dataclasses import replace

import pytest
from narrator_factories import PROV, WINDOW, make_finding, related_facts, transition

from narrator.bundle import BundleLimits, ListFactSource, build_bundle, bundle_hash, validate_bundle_shape
from ontology.errors import GroundingError
from ontology.model import Fact, canonical_json
from ontology.validation import validate

LIMITS = BundleLimits(max_facts=6, min_confidence=0.5)


def _ids(bundle):
    return [f["fact_id"] for f in bundle["facts"]]


def test_primary_fact_first_and_only_related_facts_kept():
    finding = make_finding()
    facts = related_facts()
    bundle = build_bundle(finding, ListFactSource(facts), LIMITS)

    head = bundle["facts"][0]
    assert (head["subject"], head["predicate"], head["object"]) == (finding.subject, finding.predicate, finding.object)
    kept = {(f["subject"], f["object"]) for f in bundle["facts"][1:]}
    assert kept == {("state:import_data", "state:invite_teammate"), ("state:feature_used", "state:import_data"),
                    ("state:import_data", "outcome:converted")}
    # sign_up -> feature_used shares no entity (and has confidence 0.2): excluded


def test_primary_fact_from_the_store_is_used_when_present():
    finding = make_finding()
    stored = Fact(finding.subject, finding.predicate, finding.object, 0.93, WINDOW[0], WINDOW[1],
                  dict(finding.evidence), replace(PROV, detector=finding.detector))
    bundle = build_bundle(finding, ListFactSource([stored, *related_facts()]), LIMITS)
    assert bundle["facts"][0]["fact_id"] == stored.fact_id
    assert _ids(bundle).count(stored.fact_id) == 1


@pytest.mark.parametrize("fact, kept", [
    (transition("import_data", "pricing", 10, 100, conf=0.49), False),
    (transition("import_data", "pricing", 10, 100, conf=0.5), True),
    (replace(transition("import_data", "pricing", 10, 100), valid_from="2027-01-01T00:00:00Z",
             valid_to="2027-02-01T00:00:00Z"), False),
    (transition("pricing", "billing", 10, 100), False),
], ids=["below-min-confidence", "at-min-confidence", "outside-window", "no-shared-entity"])
def test_selection_rules(fact, kept):
    bundle = build_bundle(make_finding(), ListFactSource([fact]), LIMITS)
    assert (fact.fact_id in _ids(bundle)) is kept


def test_bounded_most_relevant_first():
    many = [transition("import_data", f"s{i:02d}", 10 + i, 1000, conf=round(0.5 + i / 100, 2)) for i in range(20)]
    bundle = build_bundle(make_finding(), ListFactSource(many), BundleLimits(max_facts=4, min_confidence=0.5))
    assert len(bundle["facts"]) == 4
    confidences = [f["confidence"] for f in bundle["facts"][1:]]
    assert confidences == sorted(confidences, reverse=True) == [0.69, 0.68, 0.67]
    assert bundle["limits"]["candidates"] == 20 and bundle["limits"]["dropped"] == 17


def test_edge_and_path_findings_reach_their_states():
    bundle = build_bundle(make_finding("regression"), ListFactSource(related_facts()), LIMITS)
    assert len(bundle["facts"]) == 4  # the three import_data transitions via edge:import_data->invite_teammate


def test_deterministic_regardless_of_store_order():
    facts = related_facts() + [transition("import_data", f"s{i}", i + 1, 50) for i in range(8)]
    first = build_bundle(make_finding(), ListFactSource(facts), LIMITS)
    shuffled = facts[:]
    random.Random(7).shuffle(shuffled)
    second = build_bundle(make_finding(), ListFactSource(shuffled), LIMITS)
    assert canonical_json(first) == canonical_json(second)


def test_hash_is_sha256_of_the_canonical_body_and_tracks_content():
    bundle = build_bundle(make_finding(), ListFactSource(related_facts()), LIMITS)
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    assert bundle["bundle_hash"] == hashlib.sha256(canonical_json(body).encode()).hexdigest()
    other = build_bundle(make_finding(a=0.5771), ListFactSource(related_facts()), LIMITS)
    assert other["bundle_hash"] != bundle["bundle_hash"] == bundle_hash(bundle)


def test_schema_valid_and_broken_bundle_refused():
    bundle = build_bundle(make_finding(), ListFactSource(related_facts()), LIMITS)
    validate("bundle", bundle)
    with pytest.raises(GroundingError, match="facts"):
        validate_bundle_shape({**bundle, "facts": []})


def test_bundle_from_the_real_embedded_store_matches(tmp_path):
    from ontology.store import open_store

    store = open_store("embedded", None, tmp_path)
    try:
        facts = related_facts()
        store.write(facts)
        from_store = build_bundle(make_finding(), store, LIMITS)
    finally:
        store.close()
    assert from_store == build_bundle(make_finding(), ListFactSource(facts), LIMITS)
