"""The fast write path agrees with the slow definitions it replaces.

validate_facts (cached per value, planned per evidence shape) must refuse
exactly what validate_fact refuses; the hand-built JSON must be
canonical_json byte for byte; `write` must count new facts exactly whether it
probes, checks every fact or loads a batch whole.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from ontology import rdf
from ontology.embedded_store import EmbeddedStore
from ontology.errors import EvidenceError, OntologyError, PrivacyError
from ontology.model import Fact, Provenance, canonical_json
from ontology.store import open_store
from ontology.validation import identity_json, validate_fact, validate_facts
from tests.ontology.conftest import SAMPLES, make_fact, many_facts


def tampered(fact: Fact, **changes: Any) -> Fact:
    """A fact whose fields changed after its id was computed (what a bug or a hand edit produces)."""
    return dataclasses.replace(fact, **changes, fact_id=fact.fact_id)


BAD_FACTS = [
    ("evidence-range", lambda: make_fact(lift=-1.0), EvidenceError, "evidence.lift"),
    ("evidence-type", lambda: make_fact(n=12.5), EvidenceError, "evidence.n"),
    ("evidence-bool-as-int", lambda: make_fact("transitions_to", count=True), EvidenceError, "evidence.count"),
    ("evidence-missing-key", lambda: Fact("state:a", "transitions_to", "state:b", 0.5, "2026-01-01T00:00:00Z",
                                          "2026-02-01T00:00:00Z", {"journey": "j", "count": 1},
                                          Provenance("s", "d@1", "c", "v")), EvidenceError, "is a required property"),
    ("evidence-array-item", lambda: make_fact("regressed_after", releases=["v1", 2]), EvidenceError, "evidence.releases[1]"),
    ("evidence-enum", lambda: make_fact("regressed_after", attribution="cause"), EvidenceError, "evidence.attribution"),
    ("domain", lambda: make_fact(subject="outcome:converted"), OntologyError, "outcome:converted"),
    ("window", lambda: tampered(make_fact(), valid_from="yesterday"), OntologyError, "valid_from"),
    ("detector-pattern", lambda: make_fact().__class__(**{**make_fact().__dict__, "fact_id": "",
                                                           "provenance": Provenance("s", "Bad Detector", "c", "v")}),
     OntologyError, "provenance.detector"),
    ("tampered-confidence", lambda: tampered(make_fact(), confidence=0.5), OntologyError, "does not match its content"),
    ("tampered-evidence", lambda: tampered(make_fact(), evidence={**make_fact().evidence, "lift": 3.3}),
     OntologyError, "does not match its content"),
    ("privacy-email", lambda: make_fact("associated_with", kind="a@example.com"), PrivacyError, "email"),
    ("privacy-user-key", lambda: make_fact("associated_with", user_id=3), (PrivacyError, EvidenceError), "user_id"),
]


@pytest.mark.parametrize(("case", "build", "error", "fragment"), BAD_FACTS, ids=[c[0] for c in BAD_FACTS])
def test_batch_refuses_exactly_what_validate_fact_refuses(case: str, build: Any, error: Any, fragment: str) -> None:
    bad = build()
    with pytest.raises(error) as single:
        validate_fact(bad)
    with pytest.raises(type(single.value)) as batch:
        validate_facts([make_fact(), bad, make_fact("transitions_to")])
    assert str(batch.value) == str(single.value)
    assert fragment in str(batch.value)


@pytest.mark.parametrize("predicate", sorted(SAMPLES))
def test_batch_returns_canonical_evidence_json_for_good_facts(predicate: str) -> None:
    fact = make_fact(predicate)
    assert validate_facts([fact, fact]) == [canonical_json(fact.to_dict()["evidence"])] * 2


@pytest.mark.parametrize("predicate", sorted(SAMPLES))
def test_identity_json_is_canonical_json_byte_for_byte(predicate: str) -> None:
    fact = make_fact(predicate, note='quote " backslash \\ newline \n unicode é ✓')
    evidence_json = canonical_json(fact.to_dict()["evidence"])
    data = fact.to_dict()
    assert identity_json(fact, evidence_json, fact.fact_id) == canonical_json(data)
    del data["fact_id"]
    assert identity_json(fact, evidence_json) == canonical_json(data)


def test_marker_quad_is_what_the_store_holds(store: EmbeddedStore) -> None:
    facts = many_facts(13)
    store.write(facts)
    evidence = validate_facts(facts)
    assert all(rdf.marker_quad(f, ev) in store.oxigraph for f, ev in zip(facts, evidence))
    other = make_fact(lift=7.7)
    assert rdf.marker_quad(other, validate_facts([other])[0]) not in store.oxigraph


def test_nquads_with_and_without_precomputed_evidence_agree() -> None:
    facts = many_facts(26)
    assert rdf.nquads(facts, validate_facts(facts)) == rdf.nquads(facts)


MIXES = [
    # (name, facts written first, then the batch, expected new count)
    ("all-new-new-snapshots", 0, slice(0, 60), 60),
    ("all-new-existing-snapshots", 40, slice(40, 100), 60),
    ("all-stored", 100, slice(0, 100), 0),
    ("mostly-new-few-stored", 45, slice(40, 120), 75),   # the probes may miss the 5 stored: loaded whole
    ("mostly-stored-few-new", 110, slice(0, 120), 10),   # the probes hit: every fact checked
]


@pytest.mark.parametrize(("case", "first", "batch", "expected"), MIXES, ids=[m[0] for m in MIXES])
def test_write_counts_new_facts_exactly_and_adds_no_duplicates(tmp_path: Path, case: str, first: int,
                                                                batch: slice, expected: int) -> None:
    facts = many_facts(120)
    with open_store("embedded", None, tmp_path) as fact_store:
        fact_store.chunk_size = 25
        assert fact_store.write(facts[:first]) == first
        assert fact_store.write(facts[batch]) == expected
        stored = facts[:first] + [f for f in facts[batch] if f not in facts[:first]]
        assert fact_store.count() == len(stored)
        quads = sorted(str(q) for q in fact_store.oxigraph.quads_for_pattern(None, None, None, None))
    assert quads == sorted(str(q) for q in rdf.memory_store(stored).quads_for_pattern(None, None, None, None))


COMPACTION = [
    # (name, facts already stored, facts written by the handle, min facts, files limit, compacts?)
    ("small-write", 0, 30, 1000, 10_000, False),
    ("big-write", 0, 30, 20, 10_000, True),
    ("small-share-of-a-big-store", 300, 20, 10, 10_000, False),
    ("many-files", 0, 30, 1000, 0, True),
]


@pytest.mark.parametrize(("case", "stored", "written", "min_facts", "files_limit", "compacts"), COMPACTION,
                         ids=[c[0] for c in COMPACTION])
def test_close_compacts_only_when_worth_it(tmp_path: Path, case: str, stored: int, written: int, min_facts: int,
                                           files_limit: int, compacts: bool) -> None:
    facts = many_facts(stored + written)
    if stored:
        with open_store("embedded", None, tmp_path) as first:
            first.compact_above_files = 10_000
            first.write(facts[:stored])
    fact_store = open_store("embedded", None, tmp_path)
    fact_store.compact_min_facts, fact_store.compact_above_files = min_facts, files_limit
    fact_store.write(facts[stored:])
    calls: list[int] = []
    real = fact_store.optimize
    fact_store.optimize = lambda: calls.append(1) or real()  # type: ignore[method-assign]
    fact_store.close()
    assert calls == ([1] if compacts else [])
