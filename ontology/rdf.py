"""Fact ↔ RDF mapping, export (Turtle, JSON-LD, JSON) and SPARQL over any FactStore.

One mapping, used by the embedded store to write and by `export` to serialise
any backend's facts, so an export of the Neo4j store and of the embedded store
are the same graph. Each fact is reified as its own node `jg:fact/<id>`
(rdf:subject/predicate/object, confidence, validity window, queryable numeric
evidence copies, PROV-O provenance, and the whole fact with its evidence as
`jg:factJson`) and the plain `subject predicate object` triple is asserted
too, all in the named graph of its snapshot (`jg:snapshot/<id>`).

The mapping emits N-Quads text because the write path is hot: building a
pyoxigraph Quad object costs ~8 µs in Python, formatting a line well under
1 µs, and Oxigraph parses N-Quads in Rust. Export reads the quads back and
converts them to rdflib terms.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import pyoxigraph as ox
import rdflib
from rdflib.namespace import PROV, RDF, XSD

from ontology import vocabulary
from ontology.model import Fact, Provenance, canonical_json
from ontology.validation import identity_json

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from ontology.store import FactStore

NS = vocabulary.NAMESPACE
JG = rdflib.Namespace(NS)
PREFIXES: dict[str, str] = {
    "jg": NS, "rdf": str(RDF), "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": str(XSD), "prov": str(PROV), "owl": "http://www.w3.org/2002/07/owl#",
}
SPARQL_PREFIXES = "".join(f"PREFIX {p}: <{iri}>\n" for p, iri in PREFIXES.items())
FORMATS: tuple[str, ...] = ("turtle", "jsonld", "json")

TERM: dict[str, str] = {
    name: f"<{NS}{name}>"
    for name in (*vocabulary.PREDICATES, *vocabulary.CLASSES, *vocabulary.DATATYPE_PROPERTIES)
}
_TYPE = f"<{RDF.type}>"
_SUBJECT, _PREDICATE, _OBJECT = f"<{RDF.subject}>", f"<{RDF.predicate}>", f"<{RDF.object}>"
_JSON, _DATETIME, _DOUBLE, _INTEGER = f"<{RDF.JSON}>", f"<{XSD.dateTime}>", f"<{XSD.double}>", f"<{XSD.integer}>"
_DERIVED, _GENERATED, _USED = f"<{PROV.wasDerivedFrom}>", f"<{PROV.wasGeneratedBy}>", f"<{PROV.used}>"
_ACTIVITY, _ENTITY = f"<{PROV.Activity}>", f"<{PROV.Entity}>"
#: Evidence keys copied onto the fact node as typed literals, for SPARQL filters: support, effect,
#: significance. Every copy is a quad (~13 µs of bulk load plus compaction each), so p_value, reach
#: and probability are left in the evidence JSON; add them back here if queries need them.
NUMERIC_COPIES: dict[str, str] = {"n": "n", "lift": "lift", "q_value": "qValue"}


@lru_cache(maxsize=65536)
def entity_iri(entity: str) -> str:
    """`state:import_data` → `<ns>state/import_data` (the name percent-encoded, so `edge:a->b` is safe)."""
    vocabulary.entity_kind(entity)
    prefix, _, rest = entity.partition(":")
    return f"{NS}{prefix}/{quote(rest, safe='')}"


def entity_from_iri(iri: str) -> str | None:
    """Inverse of entity_iri (also `fact/<id>` → `fact:<id>`); None for IRIs outside our instances."""
    if not iri.startswith(NS):
        return None
    prefix, sep, rest = iri[len(NS):].partition("/")
    if not sep or (prefix not in vocabulary.ENTITY_KINDS and prefix not in ("fact", "run")):
        return None
    return f"{prefix}:{unquote(rest)}"


def fact_iri(fact_id: str) -> str:
    return f"{NS}fact/{quote(fact_id, safe='')}"


@lru_cache(maxsize=4096)
def snapshot_iri(snapshot_id: str) -> str:
    """The snapshot's node, also the name of its graph."""
    return f"{NS}snapshot/{quote(snapshot_id, safe='')}"


def run_iri(prov: Provenance) -> str:
    """A detector run = (detector@version, config hash, engine version, snapshot)."""
    key = quote(f"{prov.detector}~{prov.config_hash}~{prov.engine_version}~{prov.snapshot_id}", safe="@~")
    return f"{NS}run/{key}"


def _lit(text: str, datatype: str | None = None) -> str:
    # chained str.replace runs in C; str.translate with a dict is ~20x slower on long JSON literals
    body = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
    return body if datatype is None else f"{body}^^{datatype}"


_FACT, _FACT_JSON = TERM["Fact"], TERM["factJson"]
_CONFIDENCE, _VALID_FROM, _VALID_TO = TERM["confidence"], TERM["validFrom"], TERM["validTo"]


def fact_nquads(fact: Fact, evidence_json: str | None = None) -> tuple[list[str], str]:
    """N-Quads lines of one fact: (its data, shared entity/snapshot/run lines included; its marker).

    The marker (`jg:factJson`, the whole fact as canonical JSON) is written
    after the data, so a fact is visible to readers only once it is whole.
    """
    own, marker = _fact_text(fact, evidence_json)
    shared = "".join(_shared_texts(fact))
    return (own + shared).splitlines(keepends=True), marker


def _fact_text(fact: Fact, evidence_json: str | None = None) -> tuple[str, str]:
    """(the fact's own data lines, its marker line) as text: one f-string per fact on the write path.

    Per fact: the reified node (type, rdf:subject/predicate/object, confidence,
    validity window, PROV-O wasDerivedFrom/wasGeneratedBy), numeric evidence
    copies, and the plain `subject predicate object` triple. The evidence JSON
    is not a quad of its own: the marker holds it inside the whole fact, and
    every quad costs ~10 µs of bulk load (README-store.md, Throughput).
    Window strings go in unescaped: validated facts match the xsd:dateTime pattern.
    """
    prov = fact.provenance
    graph = _graph_term(prov.snapshot_id)
    tail = f" {graph} .\n"
    fid = fact.fact_id
    node = f"<{NS}fact/{fid}>" if fid.isascii() and fid.isalnum() else f"<{fact_iri(fid)}>"
    subject, obj, predicate = _entity_term(fact.subject), _entity_term(fact.object), TERM[fact.predicate]
    if evidence_json is None:
        evidence_json = canonical_json(dict(fact.evidence))
    text = (f"{node} {_TYPE} {_FACT}{tail}{node} {_SUBJECT} {subject}{tail}"
            f"{node} {_PREDICATE} {predicate}{tail}{node} {_OBJECT} {obj}{tail}"
            f'{node} {_CONFIDENCE} "{float(fact.confidence)!r}"^^{_DOUBLE}{tail}'
            f'{node} {_VALID_FROM} "{fact.valid_from}"^^{_DATETIME}{tail}'
            f'{node} {_VALID_TO} "{fact.valid_to}"^^{_DATETIME}{tail}'
            f"{node} {_DERIVED} {graph}{tail}{node} {_GENERATED} {_run_term(prov)}{tail}"
            f"{subject} {predicate} {obj}{tail}")
    evidence = fact.evidence
    for key, prop in _copies(tuple(evidence)):
        value = evidence[key]
        kind = type(value)
        if kind is int:
            text += f'{node} {prop} "{value}"^^{_INTEGER}{tail}'
        elif kind is float:
            text += f'{node} {prop} "{value!r}"^^{_DOUBLE}{tail}'
    marker = f"{node} {_FACT_JSON} {_json_lit(identity_json(fact, evidence_json, fid))}{tail}"
    return text, marker


def _json_lit(text: str) -> str:
    """An rdf:JSON literal; JSON text never holds a raw newline, so only \\ and \" need escaping."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"^^' + _JSON


@lru_cache(maxsize=4096)
def _copies(keys: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(evidence key, property term) of the numeric copies an evidence with these keys may get."""
    return tuple((key, TERM[prop]) for key, prop in NUMERIC_COPIES.items() if key in keys)


@lru_cache(maxsize=65536)
def _entity_term(entity: str) -> str:
    return f"<{entity_iri(entity)}>"


@lru_cache(maxsize=4096)
def _graph_term(snapshot_id: str) -> str:
    return f"<{snapshot_iri(snapshot_id)}>"


@lru_cache(maxsize=4096)
def _run_term(prov: Provenance) -> str:
    return f"<{run_iri(prov)}>"


def _shared_texts(fact: Fact) -> tuple[str, str, str]:
    """The entity and context lines a fact needs, as three cached strings (shared by many facts)."""
    graph = _graph_term(fact.provenance.snapshot_id)
    return (_entity_text(fact.subject, graph), _entity_text(fact.object, graph), _context_text(fact.provenance))


@lru_cache(maxsize=4096)
def _context_text(prov: Provenance) -> str:
    return "".join(_context_lines(prov))


@lru_cache(maxsize=65536)
def _entity_text(entity: str, graph: str) -> str:
    return "".join(_entity_lines(entity, graph))


@lru_cache(maxsize=65536)
def _entity_lines(entity: str, graph: str) -> tuple[str, ...]:
    """Type and id of an entity node; cached, since most facts share their entities."""
    node = f"<{entity_iri(entity)}>"
    return (f"{node} {_TYPE} {TERM[vocabulary.entity_kind(entity)]} {graph} .\n",
            f"{node} {TERM['entityId']} {_lit(entity)} {graph} .\n")


@lru_cache(maxsize=4096)
def _context_lines(prov: Provenance) -> tuple[str, ...]:
    """The snapshot node and the detector-run node (PROV-O activity) of a provenance; cached."""
    graph = f"<{snapshot_iri(prov.snapshot_id)}>"
    run = f"<{run_iri(prov)}>"
    triples = [
        (graph, _TYPE, TERM["Snapshot"]), (graph, _TYPE, _ENTITY),
        (graph, TERM["snapshotId"], _lit(prov.snapshot_id)),
        (run, _TYPE, _ACTIVITY), (run, _USED, graph),
        (run, TERM["detector"], _lit(prov.detector)),
        (run, TERM["configHash"], _lit(prov.config_hash)),
        (run, TERM["engineVersion"], _lit(prov.engine_version)),
    ]
    return tuple(f"{s} {p} {o} {graph} .\n" for s, p, o in triples)


def nquads(facts: Iterable[Fact], evidence_jsons: Iterable[str] | None = None) -> tuple[bytes, bytes]:
    """(data, markers) as N-Quads documents for many facts; shared lines once, order deterministic.

    `evidence_jsons` (canonical evidence JSON per fact, as validate_facts
    returns them) saves serialising each evidence a second time.
    """
    facts = list(facts)
    jsons: Iterable[str | None] = evidence_jsons if evidence_jsons is not None else [None] * len(facts)
    shared: dict[str, None] = {}
    own: list[str] = []
    markers: list[str] = []
    for fact, evidence_json in zip(facts, jsons, strict=True):
        text, marker = _fact_text(fact, evidence_json)
        own.append(text)
        markers.append(marker)
        for line in _shared_texts(fact):
            shared[line] = None
    return ("".join(shared) + "".join(own)).encode(), "".join(markers).encode()


def marker_quad(fact: Fact, evidence_json: str) -> ox.Quad:
    """The fact's marker as a pyoxigraph quad (for an exact `quad in store` check)."""
    literal = ox.Literal(identity_json(fact, evidence_json, fact.fact_id), datatype=ox.NamedNode(str(RDF.JSON)))
    return ox.Quad(ox.NamedNode(fact_iri(fact.fact_id)), ox.NamedNode(NS + "factJson"), literal,
                   ox.NamedNode(snapshot_iri(fact.provenance.snapshot_id)))


def memory_store(facts: Iterable[Fact]) -> ox.Store:
    """An in-memory Oxigraph store holding exactly what the embedded store would hold for these facts."""
    data, markers = nquads(facts)
    store = ox.Store()
    store.load(data + markers, ox.RdfFormat.N_QUADS)
    return store


def fact_from_json(text: str) -> Fact:
    """Read a fact back from its jg:factJson literal (exactly what was written)."""
    return Fact.from_dict(json.loads(text))


# ── export ───────────────────────────────────────────────────────────────────

def _to_rdflib(term: Any) -> rdflib.term.Node:
    if isinstance(term, ox.NamedNode):
        return rdflib.URIRef(term.value)
    if isinstance(term, ox.Literal):
        if term.language:
            return rdflib.Literal(term.value, lang=term.language)
        if term.datatype.value == str(XSD.string):  # RDF 1.1 simple literal: rdflib keeps it untyped
            return rdflib.Literal(term.value)
        return rdflib.Literal(term.value, datatype=rdflib.URIRef(term.datatype.value))
    raise TypeError(f"unexpected RDF term {term!r}")


def to_graph(facts: Iterable[Fact]) -> rdflib.Graph:
    """The union graph (all snapshots) of the facts, triples added in sorted order for stable output."""
    store = memory_store(facts)
    triples = {(q.subject, q.predicate, q.object) for q in store.quads_for_pattern(None, None, None, None)}
    graph = rdflib.Graph()
    for prefix, iri in PREFIXES.items():
        graph.bind(prefix, iri)
    for triple in sorted(triples, key=lambda t: tuple(str(x) for x in t)):
        graph.add(tuple(_to_rdflib(x) for x in triple))  # type: ignore[arg-type]
    return graph


def export(store: FactStore, fmt: str) -> str:
    """All facts of a store as turtle | jsonld (the union graph of all snapshots) | json (fact dicts by fact_id)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    facts = list(store.facts())
    if fmt == "json":
        return json.dumps([f.to_dict() for f in facts], indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    graph = to_graph(facts)
    if fmt == "turtle":
        return graph.serialize(format="turtle")
    context = {prefix: iri for prefix, iri in PREFIXES.items()}
    data = json.loads(graph.serialize(format="json-ld", context=context))
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ── SPARQL ───────────────────────────────────────────────────────────────────

_NUMERIC: dict[str, type] = {
    str(XSD.integer): int, str(XSD.int): int, str(XSD.long): int, str(XSD.nonNegativeInteger): int,
    str(XSD.double): float, str(XSD.float): float, str(XSD.decimal): float,
}


def _python(term: Any) -> Any:
    """A SPARQL result term as a JSON-ready value: our IRIs → entity ids, numbers → int/float, rest → str."""
    if term is None:
        return None
    if isinstance(term, ox.NamedNode):
        return entity_from_iri(term.value) or term.value
    if isinstance(term, ox.Literal):
        datatype = term.datatype.value
        if datatype in _NUMERIC:
            return _NUMERIC[datatype](term.value)
        if datatype == str(XSD.boolean):
            return term.value == "true"
        return term.value
    return str(term)


def oxigraph_of(store: FactStore) -> ox.Store:
    """The store's Oxigraph store, or an in-memory one loaded with its facts (any backend)."""
    inner = getattr(store, "oxigraph", None)
    if isinstance(inner, ox.Store):
        return inner
    return memory_store(store.facts())


def sparql(store: FactStore, query: str, *, timeout_s: float | None = None,
           max_rows: int | None = None) -> list[dict[str, Any]]:
    """Run a SPARQL SELECT/ASK over all snapshots (default graph = union); rows as plain dicts.

    Prefixes jg, rdf, rdfs, xsd, prov, owl are predeclared. ASK gives [{"ask": bool}]. SERVICE is refused,
    and the query gets `timeout_s` seconds and `max_rows` rows (`ontology.query_guard` defaults).
    """
    from ontology import query_guard
    from ontology.errors import StoreError

    query_guard.check_sparql(query)
    limit = query_guard.MAX_ROWS if max_rows is None else max_rows

    def evaluate() -> list[dict[str, Any]]:
        try:
            result = oxigraph_of(store).query(query, use_default_graph_as_union=True, prefixes=PREFIXES)
        except SyntaxError as exc:
            raise StoreError(f"SPARQL query does not parse: {exc}; check the query text") from exc
        if isinstance(result, ox.QueryBoolean):
            return [{"ask": bool(result)}]
        if isinstance(result, ox.QuerySolutions):
            names = [v.value for v in result.variables]
            rows = ({name: _python(solution[name]) for name in names} for solution in result)
            return query_guard.take(rows, limit, log.warning)
        raise StoreError("only SPARQL SELECT and ASK queries are supported here; use `journeygraph export` for graphs")

    return query_guard.run_with_deadline(evaluate, query_guard.TIMEOUT_S if timeout_s is None else timeout_s,
                                         "SPARQL query")


def iter_ids(rows: Iterable[dict[str, Any]], key: str) -> Iterator[str]:
    """Convenience: the fact ids in a sparql() result column holding fact nodes."""
    for row in rows:
        value = row.get(key)
        if isinstance(value, str) and value.startswith("fact:"):
            yield value[5:]
