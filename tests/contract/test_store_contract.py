"""One contract, every fact store: each test runs against "embedded" and "neo4j" (a real Bolt server).

What a store must do: give back exactly what it was given, sorted by
fact_id; be idempotent on fact_id; filter by entity (subject or object),
predicate and snapshot; refuse bad facts exactly as validate_fact does,
writing nothing of a refused batch; and survive a writer killed mid-write
(and, for neo4j, a server killed mid-write) without duplicates or holes once
the write is re-run.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ontology.errors import EvidenceError, OntologyError, PrivacyError, UnknownPredicate
from ontology.model import Fact
from ontology.store import FactStore
from ontology.validation import validate_fact
from tests.contract.conftest import ALLOWED_PROPERTIES, StoreSite
from tests.contract.factset import make_facts

N = 120
FACTS = make_facts(N)
BY_ID = sorted(FACTS, key=lambda f: f.fact_id)
WRITER = Path(__file__).with_name("writer.py")


def _ids(facts: Any) -> list[str]:
    return [f.fact_id for f in facts]


def test_round_trip_gives_back_equal_facts_sorted_by_id(store: FactStore) -> None:
    assert store.write(FACTS) == N
    back = list(store.facts())
    assert _ids(back) == _ids(BY_ID)
    assert back == BY_ID  # every field, evidence and provenance included
    assert [f.to_dict() for f in back] == [f.to_dict() for f in BY_ID]
    assert store.count() == N


def test_get_by_id(store: FactStore) -> None:
    store.write(FACTS)
    fact = FACTS[17]
    assert store.get(fact.fact_id) == fact
    assert store.get(fact.fact_id).fact_id == fact.fact_id  # type: ignore[union-attr]
    assert store.get("0" * 24) is None


def test_same_facts_twice_changes_nothing(site: StoreSite) -> None:
    store = site.open()
    assert store.write(FACTS) == N
    before = [f.to_dict() for f in store.facts()]
    assert store.write(FACTS) == 0
    assert store.write(list(reversed(FACTS)) + FACTS[:5]) == 0  # order and in-batch repeats do not matter
    assert store.count() == N
    assert [f.to_dict() for f in store.facts()] == before
    store.close()
    again = site.open()  # persisted, and still idempotent after reopening
    assert again.write(FACTS[:10]) == 0
    assert again.count() == N


def test_partial_overlap_writes_only_the_new_facts(store: FactStore) -> None:
    assert store.write(FACTS[:70]) == 70
    assert store.write(FACTS[50:]) == N - 70
    assert list(store.facts()) == BY_ID


FILTERS: list[tuple[str, dict[str, str], Callable[[Fact], bool]]] = [
    ("entity-state-as-subject-or-object", {"entity": "state:s1"}, lambda f: "state:s1" in (f.subject, f.object)),
    ("entity-outcome", {"entity": "outcome:converted"}, lambda f: f.object == "outcome:converted"),
    ("entity-journey", {"entity": "journey:activation"}, lambda f: f.object == "journey:activation"),
    ("entity-segment", {"entity": "segment:plan=pro"}, lambda f: f.object == "segment:plan=pro"),
    ("entity-release", {"entity": "release:v2.3"}, lambda f: f.object == "release:v2.3"),
    ("entity-snapshot-object", {"entity": "snapshot:snapB"}, lambda f: f.object == "snapshot:snapB"),
    ("entity-edge", {"entity": "edge:s2->s3"}, lambda f: f.subject == "edge:s2->s3"),
    ("entity-path", {"entity": "path:s4>s6"}, lambda f: f.subject == "path:s4>s6"),
    ("predicate", {"predicate": "changed_after"}, lambda f: f.predicate == "changed_after"),
    ("snapshot", {"snapshot_id": "snapB"}, lambda f: f.provenance.snapshot_id == "snapB"),
    ("entity+predicate", {"entity": "state:s1", "predicate": "transitions_to"},
     lambda f: "state:s1" in (f.subject, f.object) and f.predicate == "transitions_to"),
    ("entity+snapshot", {"entity": "outcome:converted", "snapshot_id": "snapA"},
     lambda f: f.object == "outcome:converted" and f.provenance.snapshot_id == "snapA"),
    ("predicate+snapshot", {"predicate": "more_common_in", "snapshot_id": "snapC"},
     lambda f: f.predicate == "more_common_in" and f.provenance.snapshot_id == "snapC"),
    ("all-three", {"entity": "state:s5", "predicate": "transitions_to", "snapshot_id": "snapA"},
     lambda f: "state:s5" in (f.subject, f.object) and f.predicate == "transitions_to"
     and f.provenance.snapshot_id == "snapA"),
]


@pytest.mark.parametrize(("query", "keep"), [pytest.param(q, k, id=i) for i, q, k in FILTERS])
def test_filters_select_exactly_the_matching_facts(store: FactStore, query: dict[str, str],
                                                   keep: Callable[[Fact], bool]) -> None:
    store.write(FACTS)
    expected = [f for f in BY_ID if keep(f)]
    assert 0 < len(expected) < N, "the fact set must make this filter select a proper subset"
    assert list(store.facts(**query)) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("query", [
    pytest.param({"entity": "state:never_seen"}, id="unknown-entity"),
    pytest.param({"entity": "widget:s1"}, id="entity-of-unknown-kind"),
    pytest.param({"entity": "s1"}, id="entity-without-kind"),
    pytest.param({"snapshot_id": "no-such-snapshot"}, id="unknown-snapshot"),
    pytest.param({"predicate": "necessary_for_conversion"}, id="predicate-without-facts"),
    pytest.param({"predicate": "causes"}, id="predicate-outside-vocabulary"),
    pytest.param({"entity": "state:s1", "predicate": "is_fast_path_to"}, id="filters-that-exclude-each-other"),
])
def test_filters_that_match_nothing_give_nothing(store: FactStore, query: dict[str, str]) -> None:
    store.write(FACTS)
    assert list(store.facts(**query)) == []  # type: ignore[arg-type]


def _tamper(fact: Fact, **fields: Any) -> Fact:
    """A Fact with fields changed after construction: what a buggy or hostile producer could hand a store."""
    bad = replace(fact)
    for name, value in fields.items():
        object.__setattr__(bad, name, value)
    return bad


GOOD = FACTS[0]  # transitions_to state -> state
BAD_FACTS: list[tuple[str, Fact, type[Exception]]] = [
    ("unknown-predicate", _tamper(GOOD, predicate="causes"), UnknownPredicate),
    ("evidence-missing-key", _tamper(GOOD, evidence={k: v for k, v in GOOD.evidence.items() if k != "probability"}),
     EvidenceError),
    ("evidence-out-of-range", _tamper(GOOD, evidence={**GOOD.evidence, "probability": 1.7}), EvidenceError),
    ("evidence-wrong-type", _tamper(GOOD, evidence={**GOOD.evidence, "count": "many"}), EvidenceError),
    ("smuggled-user-id-key", _tamper(GOOD, evidence={**GOOD.evidence, "actor_id": "u-48213"}), PrivacyError),
    ("smuggled-email", _tamper(GOOD, evidence={**GOOD.evidence, "note": "ask alice@example.com"}), PrivacyError),
    ("smuggled-uuid", _tamper(GOOD, evidence={**GOOD.evidence, "who": "9f1c2b7e-3a4d-4e5f-8a9b-0c1d2e3f4a5b"}),
     PrivacyError),
    ("property-outside-allowlist", _tamper(GOOD, evidence={**GOOD.evidence, "property": "salary"}), PrivacyError),
    ("subject-breaks-domain", _tamper(GOOD, subject="journey:activation"), OntologyError),
    ("tampered-content-hash", _tamper(GOOD, confidence=0.999), OntologyError),
]


@pytest.mark.parametrize(("bad", "error"), [pytest.param(b, e, id=i) for i, b, e in BAD_FACTS])
def test_bad_facts_are_refused_like_validate_fact_and_nothing_is_written(store: FactStore, bad: Fact,
                                                                        error: type[Exception]) -> None:
    with pytest.raises(error) as direct:
        validate_fact(bad, ALLOWED_PROPERTIES)
    store.write(FACTS[1:4])
    with pytest.raises(error) as refused:
        store.write([FACTS[5], bad, FACTS[6]])  # a good fact before the bad one is not written either
    assert type(refused.value) is type(direct.value)
    assert str(refused.value) == str(direct.value)
    assert store.count() == 3
    assert store.get(FACTS[5].fact_id) is None


def _start_writer(site: StoreSite, n: int, chunk: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-u", str(WRITER), str(n), str(chunk)], env=site.writer_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_chunk(writer: subprocess.Popen[str]) -> str:
    """Block until the writer reports its first stored chunk (no clock involved)."""
    assert writer.stdout is not None
    line = writer.stdout.readline().strip()
    if line != "CHUNK 0":
        writer.kill()
        _, err = writer.communicate()
        pytest.fail(f"writer did not store its first chunk: stdout {line!r}, stderr {err[-2000:]}")
    return line


def _assert_complete_after_rerun(site: StoreSite, n: int) -> None:
    """Whatever survived the crash is intact; re-running the write fills the holes, adds no duplicates."""
    expected = sorted(make_facts(n), key=lambda f: f.fact_id)
    store = site.open()
    survived = list(store.facts())
    assert 0 < len(survived) <= n
    assert len(set(_ids(survived))) == len(survived) == store.count()
    assert set(_ids(survived)) <= set(_ids(expected))
    by_id = {f.fact_id: f for f in expected}
    assert all(f == by_id[f.fact_id] for f in survived)  # no half-written fact
    assert store.write(make_facts(n)) == n - len(survived)
    assert list(store.facts()) == expected
    assert store.count() == n
    if site.backend == "neo4j":
        _assert_graph_integrity(store)


def _assert_graph_integrity(store: Any) -> None:
    from ontology import cypher

    assert store.cypher(cypher.DUPLICATE_FACT_IDS) == []
    assert store.cypher(cypher.DUPLICATE_PREDICATE_EDGES) == []
    assert store.cypher(cypher.FACTS_WITHOUT_LINKS) == []


def test_writer_killed_mid_write_leaves_no_duplicates_and_rerun_completes(site: StoreSite) -> None:
    n, chunk = 1000, 100
    writer = _start_writer(site, n, chunk)
    _wait_for_chunk(writer)
    writer.kill()  # SIGKILL: no cleanup, no flush, possibly inside a transaction
    writer.wait()
    assert writer.returncode == -9
    _assert_complete_after_rerun(site, n)
