"""The Turtle file is the source of truth; the Python mirror must equal it exactly."""

from __future__ import annotations

from importlib import resources

import pytest
import rdflib
from rdflib.collection import Collection
from rdflib.namespace import OWL, RDF, RDFS

from ontology import vocabulary
from ontology.errors import OntologyError, UnknownPredicate
from ontology.model import Fact, Provenance

JG = rdflib.Namespace(vocabulary.NAMESPACE)


@pytest.fixture(scope="module")
def ttl() -> rdflib.Graph:
    text = (resources.files("ontology") / "journeygraph.ttl").read_text(encoding="utf-8")
    return rdflib.Graph().parse(data=text, format="turtle")


def local_names(graph: rdflib.Graph, rdf_type: rdflib.URIRef) -> set[str]:
    return {str(s)[len(JG):] for s in graph.subjects(RDF.type, rdf_type) if str(s).startswith(str(JG)) and str(s) != str(JG)}


def class_names(graph: rdflib.Graph, node: rdflib.term.Node) -> tuple[str, ...]:
    """rdfs:domain/range as mirror tuples: owl:Thing → (), a union → its sorted members."""
    if node == OWL.Thing:
        return ()
    union = graph.value(node, OWL.unionOf)
    members = list(Collection(graph, union)) if union is not None else [node]
    return tuple(sorted(str(m)[len(JG):] for m in members))


@pytest.mark.parametrize(
    ("rdf_type", "mirror"),
    [(OWL.ObjectProperty, vocabulary.PREDICATES), (OWL.Class, vocabulary.CLASSES),
     (OWL.DatatypeProperty, vocabulary.DATATYPE_PROPERTIES)],
    ids=["predicates", "classes", "datatype-properties"],
)
def test_ttl_terms_equal_python_mirror(ttl: rdflib.Graph, rdf_type: rdflib.URIRef, mirror: tuple[str, ...]) -> None:
    assert local_names(ttl, rdf_type) == set(mirror)
    assert len(set(mirror)) == len(mirror)


@pytest.mark.parametrize("predicate", vocabulary.PREDICATES)
def test_each_predicate_is_documented_with_domain_and_range_matching_mirror(ttl: rdflib.Graph, predicate: str) -> None:
    term = JG[predicate]
    assert ttl.value(term, RDFS.label) and ttl.value(term, RDFS.comment)
    assert class_names(ttl, ttl.value(term, RDFS.domain)) == vocabulary.PREDICATE_DOMAINS[predicate]
    assert class_names(ttl, ttl.value(term, RDFS.range)) == vocabulary.PREDICATE_RANGES[predicate]


def test_no_causal_predicate_in_vocabulary() -> None:
    causal = ("cause", "causes", "leads_to", "drives", "results_in", "because")
    assert not [p for p in vocabulary.PREDICATES if any(word in p for word in causal)]


def test_unknown_predicate_error_lists_every_allowed_one() -> None:
    with pytest.raises(UnknownPredicate) as info:
        Fact("state:a", "causes", "outcome:converted", 0.9, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
             {"journey": "j"}, Provenance("s", "d@1", "c", "0.1.0"))
    message = str(info.value)
    assert "'causes'" in message
    assert all(predicate in message for predicate in vocabulary.PREDICATES)


@pytest.mark.parametrize(
    ("entity", "kind"),
    [("state:import_data", "State"), ("edge:a->b", "Edge"), ("segment:plan=*", "Segment"),
     ("path:a>b>c", "Path"), ("snapshot:abc", "Snapshot")],
    ids=["state", "edge", "segment-rest", "path", "snapshot"],
)
def test_entity_kind(entity: str, kind: str) -> None:
    assert vocabulary.entity_kind(entity) == kind


@pytest.mark.parametrize("entity", ["import_data", "user:42", "state:"], ids=["no-prefix", "unknown-kind", "empty-name"])
def test_bad_entity_id_is_refused(entity: str) -> None:
    with pytest.raises(OntologyError, match="bad entity id"):
        vocabulary.entity_kind(entity)
