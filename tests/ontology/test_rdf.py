"""Export (Turtle, JSON-LD, JSON) parses back to the same graph, byte-stable; SPARQL over the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import rdflib
from rdflib.compare import isomorphic

from ontology import rdf
from ontology.embedded_store import EmbeddedStore
from ontology.errors import StoreError
from ontology.store import open_store
from tests.ontology.conftest import make_fact, many_facts


@pytest.mark.parametrize(("fmt", "rdflib_format"), [("turtle", "turtle"), ("jsonld", "json-ld")], ids=["turtle", "jsonld"])
def test_export_parses_back_to_an_isomorphic_graph(store: EmbeddedStore, fmt: str, rdflib_format: str) -> None:
    facts = many_facts(40)
    store.write(facts)
    text = rdf.export(store, fmt)
    parsed = rdflib.Graph().parse(data=text, format=rdflib_format)
    expected = rdf.to_graph(facts)
    assert len(parsed) == len(expected) > 40 * 12
    assert isomorphic(parsed, expected)
    # and the union of the live store's named graphs (read through rdflib/oxrdflib) is that same graph;
    # oxrdflib types simple literals as xsd:string explicitly, the same RDF 1.1 term
    live = rdflib.Graph()
    for s, p, o, _ in store.dataset.quads((None, None, None, None)):
        if isinstance(o, rdflib.Literal) and o.datatype == rdflib.XSD.string:
            o = rdflib.Literal(str(o))
        live.add((s, p, o))
    assert isomorphic(live, parsed)


@pytest.mark.parametrize("fmt", rdf.FORMATS)
def test_export_is_byte_identical_whatever_the_write_order(tmp_path: Path, fmt: str) -> None:
    facts = many_facts(30)
    outputs = []
    for name, batch in (("a", facts), ("b", list(reversed(facts)))):
        with open_store("embedded", None, tmp_path / name) as fact_store:
            for start in range(0, len(batch), 12):
                fact_store.write(batch[start:start + 12])
            outputs.append(rdf.export(fact_store, fmt))
    assert outputs[0] == outputs[1]


def test_json_export_is_fact_dicts_sorted_by_id(store: EmbeddedStore) -> None:
    facts = many_facts(12)
    store.write(facts)
    data = json.loads(rdf.export(store, "json"))
    assert [d["fact_id"] for d in data] == sorted(f.fact_id for f in facts)
    assert data[0] == min(facts, key=lambda f: f.fact_id).to_dict()


def test_unknown_export_format_lists_valid_ones(store: EmbeddedStore) -> None:
    with pytest.raises(ValueError, match="turtle, jsonld, json"):
        rdf.export(store, "xml")


def test_sparql_select_returns_entity_ids_and_numbers(store: EmbeddedStore) -> None:
    store.write([make_fact(), make_fact("transitions_to"), make_fact(lift=1.7, snapshot_id="other")])
    rows = rdf.sparql(store, """
        SELECT ?subject ?object ?lift ?n ?detector WHERE {
          ?f rdf:predicate jg:is_activation_driver_for ; rdf:subject ?subject ; rdf:object ?object ;
             jg:lift ?lift ; jg:n ?n ; prov:wasGeneratedBy ?run .
          ?run jg:detector ?detector .
          FILTER(?lift > 2)
        }""")
    assert rows == [{"subject": "state:import_data", "object": "outcome:converted", "lift": 3.2, "n": 1800,
                     "detector": "activation_driver@1"}]


def test_sparql_ask_and_named_graphs(store: EmbeddedStore) -> None:
    store.write(many_facts(10, snapshots=2))
    assert rdf.sparql(store, "ASK { ?s jg:changed_after ?o }") == [{"ask": True}]
    assert rdf.sparql(store, "ASK { ?s jg:transitions_to ?o }") == [{"ask": False}]  # 10th+ predicate not written
    rows = rdf.sparql(store, "SELECT DISTINCT ?g WHERE { GRAPH ?g { ?f a jg:Fact } } ORDER BY ?g")
    assert rows == [{"g": "snapshot:snap0"}, {"g": "snapshot:snap1"}]


def test_sparql_syntax_error_is_a_store_error(store: EmbeddedStore) -> None:
    with pytest.raises(StoreError, match="does not parse"):
        rdf.sparql(store, "SELEC nothing")


class ListStore:
    """A minimal non-Oxigraph FactStore (how the Neo4j store looks to rdf.py)."""

    name = "list"

    def __init__(self, facts):  # type: ignore[no-untyped-def]
        self._facts = sorted(facts, key=lambda f: f.fact_id)

    def facts(self, **_):  # type: ignore[no-untyped-def]
        return iter(self._facts)


def test_export_and_sparql_work_for_any_backend(store: EmbeddedStore) -> None:
    facts = many_facts(20)
    store.write(facts)
    other = ListStore(facts)
    assert rdf.export(other, "turtle") == rdf.export(store, "turtle")
    query = "SELECT (COUNT(?f) AS ?c) WHERE { ?f a jg:Fact }"
    assert rdf.sparql(other, query) == rdf.sparql(store, query) == [{"c": 20}]


@pytest.mark.parametrize(
    "entity",
    ["state:import_data", "edge:import_data->invite_teammate", "segment:plan=*", "segment:country=Côte d'Ivoire",
     "path:a>b>c", "release:v2.3", "outcome:con verted", "snapshot:5f/3"],
    ids=["state", "edge", "segment-rest", "segment-unicode", "path", "release", "space", "slash"],
)
def test_entity_iri_round_trips(entity: str) -> None:
    iri = rdf.entity_iri(entity)
    rdflib.URIRef(iri)  # a valid IRI for rdflib
    assert " " not in iri and ">" not in iri
    assert rdf.entity_from_iri(iri) == entity


def test_literals_with_quotes_and_newlines_survive(store: EmbeddedStore) -> None:
    fact = make_fact("associated_with", kind='slow "path"\nwith \\ backslash')
    store.write([fact])
    assert store.get(fact.fact_id) == fact
    parsed = rdflib.Graph().parse(data=rdf.export(store, "turtle"), format="turtle")
    assert isomorphic(parsed, rdf.to_graph([fact]))


FACT_NODE_PROPERTIES = {"rdf:type", "rdf:subject", "rdf:predicate", "rdf:object", "jg:confidence", "jg:validFrom",
                        "jg:validTo", "prov:wasDerivedFrom", "prov:wasGeneratedBy", "jg:factJson"}
NODE_SHAPES = [
    ("driver-with-n-lift-q", "is_activation_driver_for", {"jg:n", "jg:lift", "jg:qValue"}),
    ("dropoff-with-n-q", "is_dropoff_point_for", {"jg:n", "jg:qValue"}),
    ("transition-no-copies", "transitions_to", set()),
]


@pytest.mark.parametrize(("case", "predicate", "copies"), NODE_SHAPES, ids=[s[0] for s in NODE_SHAPES])
def test_fact_node_holds_its_evidence_once_inside_the_fact_json(case: str, predicate: str, copies: set[str]) -> None:
    """The evidence is not a quad of its own (each quad costs bulk-load time): it lives in jg:factJson."""
    fact = make_fact(predicate)
    store = rdf.memory_store([fact])
    node = rdf.fact_iri(fact.fact_id)
    short = {iri: prefix for prefix, iri in rdf.PREFIXES.items()}
    properties = set()
    for quad in store.quads_for_pattern(None, None, None, None):
        if quad.subject.value == node:
            namespace = next(iri for iri in short if quad.predicate.value.startswith(iri))
            properties.add(f"{short[namespace]}:{quad.predicate.value[len(namespace):]}")
    assert properties == FACT_NODE_PROPERTIES | copies
    stored = [q for q in store.quads_for_pattern(None, None, None, None) if q.predicate.value == rdf.NS + "factJson"]
    assert [rdf.fact_from_json(q.object.value).evidence for q in stored] == [fact.evidence]
