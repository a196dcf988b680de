"""The embedded Oxigraph store against the FactStore contract, on real files under tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import rdflib

from ontology import rdf
from ontology.embedded_store import EmbeddedStore
from ontology.errors import StoreError
from ontology.plugins import Plugin
from ontology.store import BACKENDS, FactStore, open_store
from tests.ontology.conftest import make_fact, many_facts


def all_quads(store: EmbeddedStore) -> list[str]:
    return sorted(str(q) for q in store.oxigraph.quads_for_pattern(None, None, None, None))


def test_is_a_fact_store_and_lives_in_workspace_facts(store: EmbeddedStore, tmp_path: Path) -> None:
    assert isinstance(store, FactStore)
    assert store.name == "embedded"
    assert store.path == tmp_path / "facts" and store.path.is_dir()


def test_round_trip_write_then_read_back_equal(store: EmbeddedStore) -> None:
    facts = many_facts(120)
    assert store.write(facts) == 120
    back = list(store.facts())
    assert back == sorted(facts, key=lambda f: f.fact_id)
    assert [f.fact_id for f in back] == sorted(f.fact_id for f in facts)
    assert [f.to_dict() for f in back] == [f.to_dict() for f in sorted(facts, key=lambda f: f.fact_id)]


def test_same_facts_written_twice_leave_the_store_unchanged(store: EmbeddedStore) -> None:
    facts = many_facts(60)
    assert store.write(facts) == 60
    before = all_quads(store)
    assert store.write(facts) == 0
    assert store.write(list(reversed(facts)) + facts[:5]) == 0
    assert all_quads(store) == before
    assert store.count() == 60


def test_duplicates_inside_one_batch_count_once(store: EmbeddedStore) -> None:
    fact = make_fact()
    assert store.write([fact, fact, make_fact()]) == 1
    assert store.count() == 1


def test_written_quads_are_exactly_the_rdf_mapping(store: EmbeddedStore) -> None:
    facts = many_facts(30)
    store.write(facts)
    expected = sorted(str(q) for q in rdf.memory_store(facts).quads_for_pattern(None, None, None, None))
    assert all_quads(store) == expected


FILTERS = [
    ("entity-as-subject", {"entity": "state:import_data"}),
    ("entity-as-object", {"entity": "outcome:converted"}),
    ("entity-edge", {"entity": "edge:import_data->invite_teammate"}),
    ("predicate", {"predicate": "transitions_to"}),
    ("snapshot", {"snapshot_id": "snap3"}),
    ("predicate-and-snapshot", {"predicate": "is_fast_path_to", "snapshot_id": "snap1"}),
    ("entity-and-predicate", {"entity": "outcome:converted", "predicate": "necessary_for_conversion"}),
    ("unknown-entity", {"entity": "state:nowhere"}),
    ("malformed-entity", {"entity": "nowhere"}),
]


@pytest.mark.parametrize(("case", "filters"), FILTERS, ids=[c for c, _ in FILTERS])
def test_filters_match_a_plain_python_filter(store: EmbeddedStore, case: str, filters: dict[str, Any]) -> None:
    facts = many_facts(130) + [make_fact(subject="state:import_data", snapshot_id="snap1")]
    store.write(facts)

    def keep(f: Any) -> bool:
        entity = filters.get("entity")
        return ((entity is None or entity in (f.subject, f.object))
                and filters.get("predicate", f.predicate) == f.predicate
                and filters.get("snapshot_id", f.provenance.snapshot_id) == f.provenance.snapshot_id)

    expected = sorted((f for f in facts if keep(f)), key=lambda f: f.fact_id)
    assert list(store.facts(**filters)) == expected
    if case not in ("unknown-entity", "malformed-entity"):
        assert expected


def test_get_and_count(store: EmbeddedStore) -> None:
    facts = many_facts(15)
    store.write(facts)
    assert store.get(facts[3].fact_id) == facts[3]
    assert store.get("0" * 24) is None
    assert store.count() == 15
    assert store.snapshot_ids() == ["snap0", "snap1", "snap2", "snap3", "snap4"]


def test_facts_persist_across_close_and_reopen(tmp_path: Path) -> None:
    facts = many_facts(40)
    with open_store("embedded", None, tmp_path) as first:
        first.write(facts)
    with open_store("embedded", None, tmp_path) as second:
        assert second.count() == 40
        assert list(second.facts()) == sorted(facts, key=lambda f: f.fact_id)


def test_rdflib_dataset_view_has_one_named_graph_per_snapshot(store: EmbeddedStore) -> None:
    facts = many_facts(20, snapshots=3)
    store.write(facts)
    dataset = store.dataset
    graphs = {str(g.identifier) for g in dataset.graphs() if str(g.identifier).startswith(rdf.NS)}
    assert graphs == {rdf.snapshot_iri(f"snap{i}") for i in range(3)}
    fact = facts[0]
    node = rdflib.URIRef(rdf.fact_iri(fact.fact_id))
    assert (node, rdflib.RDF.subject, rdflib.URIRef(rdf.entity_iri(fact.subject))) in dataset
    plain = (rdflib.URIRef(rdf.entity_iri(fact.subject)), rdf.JG[fact.predicate], rdflib.URIRef(rdf.entity_iri(fact.object)))
    assert plain in dataset
    derived = dataset.value(node, rdflib.URIRef("http://www.w3.org/ns/prov#wasDerivedFrom"))
    assert str(derived) == rdf.snapshot_iri(fact.provenance.snapshot_id)


def test_unknown_backend_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store backend 'sqlite'; valid backends: embedded, neo4j"):
        open_store("sqlite", None, tmp_path)


def test_missing_optional_dependency_names_the_pip_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS._builtins, "graphx",
                        Plugin("graphx", "ontology.graphx_store:GraphX", "journeygraph_absent_pkg", "pip install 'graphx>=1'"))
    with pytest.raises(StoreError, match=r"install it with: pip install 'graphx>=1'"):
        open_store("graphx", None, tmp_path)


def test_second_open_of_a_held_store_says_what_to_do(store: EmbeddedStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="holds it: close it or use another workspace"):
        open_store("embedded", None, tmp_path)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = open_store("embedded", None, tmp_path)
    store.close()
    with pytest.raises(StoreError, match="is closed"):
        store.count()


def test_invalid_fact_in_a_batch_writes_nothing(store: EmbeddedStore) -> None:
    from ontology.errors import EvidenceError

    with pytest.raises(EvidenceError, match="evidence.lift"):
        store.write([make_fact(), make_fact(lift=-2.0)])
    assert store.count() == 0


def test_write_accepts_any_iterable(store: EmbeddedStore) -> None:
    facts = many_facts(8)
    assert store.write(f for f in facts) == 8  # type: ignore[arg-type]
    assert store.count() == 8


def test_backends_are_imported_only_when_chosen(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; from ontology.store import open_store; "
            "s = open_store('embedded', None, sys.argv[1]); s.close(); "
            "print(sorted(m for m in ('neo4j', 'ontology.neo4j_store') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
