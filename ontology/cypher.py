"""Every Cypher statement the Neo4j fact store sends, as parameterised constants.

No query text is ever built from user data: values travel only as
parameters. Labels and relationship types cannot be parameters (and ArcadeDB
has no dynamic labels), so the per-label and per-predicate statements are
generated once, at import, from the closed vocabulary (predicates with
their rdfs:domain/range) and looked up by key;
an unknown key is a KeyError, never a new query.

Graph shape:

    (:State|Outcome|Edge|Segment|Release|Path|Journey|Snapshot {id, name, kind})
    (:Fact {id, fact_id, subject, predicate, object, confidence, valid_from, valid_to,
            evidence (JSON), provenance (JSON), snapshot_id, detector, config_hash,
            engine_version, journey})
    (:Fact)-[:ABOUT {id, role: 'subject'|'object'}]->(entity)
    (:Fact)-[:DERIVED_FROM {id}]->(:Snapshot)
    (subject)-[:TRANSITIONS_TO|IS_DROPOFF_POINT_FOR|… {id, fact_id, confidence}]->(object)

Every node and relationship carries its own `id` (never `id()`/`elementId()`),
so the same text runs on Neo4j 5 and ArcadeDB. (ArcadeDB keeps node labels and
relationship types in one namespace: they must never share a name.)
"""

from __future__ import annotations

from itertools import product

from ontology.vocabulary import ENTITY_KINDS, PREDICATE_DOMAINS, PREDICATE_RANGES, PREDICATES

ENTITY_LABELS: tuple[str, ...] = tuple(sorted(set(ENTITY_KINDS.values())))
FACT_INDEXED: tuple[str, ...] = ("subject", "object", "predicate", "snapshot_id")


def relationship_type(predicate: str) -> str:
    """`is_dropoff_point_for` -> `IS_DROPOFF_POINT_FOR` (Neo4j's naming for relationship types)."""
    return predicate.upper()


# --- schema (created on open, before any bulk MERGE: ArcadeDB MERGE without an index is very slow)

UNIQUE_CONSTRAINTS: tuple[str, ...] = tuple(
    f"CREATE CONSTRAINT {label.lower()}_id_uniq IF NOT EXISTS FOR (n:{label}) REQUIRE n.id IS UNIQUE"
    for label in (*ENTITY_LABELS, "Fact")
)
FACT_INDEXES: tuple[str, ...] = tuple(
    f"CREATE INDEX fact_{prop}_idx IF NOT EXISTS FOR (n:Fact) ON (n.{prop})" for prop in FACT_INDEXED
)

# --- writes: one transaction per batch. EXISTING_FACT_IDS first; only the new facts are then CREATEd, one
#     statement per (predicate, subject label, object label) group, with their entities MERGEd on id (backed by
#     the unique constraints) and all links made in the same statement. A concurrent writer creating the same
#     fact trips the unique constraint on Fact.id (ConstraintError), and the retried batch skips it.
#
#     The rows arrive nested, snapshot -> object -> facts ($snapshots: [{node, name, objects: [{id, name,
#     rows: [...]}]}]), so the Snapshot and the object entity (an outcome, journey or segment shared by many facts)
#     are MERGEd once per group instead of once per fact. On ArcadeDB the three per-row MERGEs were 10-20 % of
#     the statement's time (PROFILE per clause); nesting cut the server's query CPU by ~7 % in an alternating
#     A/B on a warm server. Per fact there remain one MERGE (the subject), the Fact node and its four
#     relationships, which is where the rest of the time goes (record and index writes, edge-list appends).

EXISTING_FACT_IDS = "MATCH (f:Fact) WHERE f.id IN $ids RETURN f.id AS id"

_WRITE = """
UNWIND $snapshots AS g
MERGE (snap:Snapshot {{id: g.node}}) ON CREATE SET snap.name = g.name, snap.kind = 'Snapshot'
WITH snap, g
UNWIND g.objects AS og
MERGE (o:{object} {{id: og.id}}) ON CREATE SET o.name = og.name, o.kind = '{object}'
WITH snap, o, og
UNWIND og.rows AS r
MERGE (s:{subject} {{id: r.subject}}) ON CREATE SET s.name = r.subject_name, s.kind = '{subject}'
CREATE (f:Fact {{id: r.fact_id, fact_id: r.fact_id, subject: r.subject, predicate: r.predicate,
                object: r.object, confidence: r.confidence, valid_from: r.valid_from, valid_to: r.valid_to,
                evidence: r.evidence, provenance: r.provenance, snapshot_id: r.snapshot_id,
                detector: r.detector, config_hash: r.config_hash, engine_version: r.engine_version,
                journey: r.journey}})
CREATE (f)-[:DERIVED_FROM {{id: r.fact_id + '>snapshot'}}]->(snap)
CREATE (f)-[:ABOUT {{id: r.fact_id + '>subject', role: 'subject'}}]->(s)
CREATE (f)-[:ABOUT {{id: r.fact_id + '>object', role: 'object'}}]->(o)
CREATE (s)-[:{rel} {{id: r.fact_id, fact_id: r.fact_id, confidence: r.confidence}}]->(o)
"""

WRITE_FACTS: dict[tuple[str, str, str], str] = {
    (predicate, subject, obj): _WRITE.format(subject=subject, object=obj, rel=relationship_type(predicate))
    for predicate in PREDICATES
    for subject, obj in product(PREDICATE_DOMAINS[predicate] or ENTITY_LABELS, PREDICATE_RANGES[predicate] or ENTITY_LABELS)
}

# --- reads

_FACT_COLUMNS = """
RETURN f.fact_id AS fact_id, f.subject AS subject, f.predicate AS predicate, f.object AS object,
       f.confidence AS confidence, f.valid_from AS valid_from, f.valid_to AS valid_to,
       f.evidence AS evidence, f.provenance AS provenance
ORDER BY fact_id
"""

_OPTIONAL_FILTERS = "($predicate IS NULL OR f.predicate = $predicate) AND ($snapshot_id IS NULL OR f.snapshot_id = $snapshot_id)"

FACTS_BY_ENTITY: dict[str, str] = {
    label: f"MATCH (e:{label} {{id: $entity}})<-[:ABOUT]-(f:Fact) WHERE {_OPTIONAL_FILTERS} WITH DISTINCT f {_FACT_COLUMNS}"
    for label in ENTITY_LABELS
}
FACTS_BY_PREDICATE = (
    "MATCH (f:Fact) WHERE f.predicate = $predicate AND ($snapshot_id IS NULL OR f.snapshot_id = $snapshot_id)"
    + _FACT_COLUMNS
)
FACTS_BY_SNAPSHOT = "MATCH (f:Fact) WHERE f.snapshot_id = $snapshot_id" + _FACT_COLUMNS
ALL_FACTS = "MATCH (f:Fact)" + _FACT_COLUMNS
GET_FACT = "MATCH (f:Fact {id: $fact_id})" + _FACT_COLUMNS
COUNT_FACTS = "MATCH (f:Fact) RETURN count(f) AS n"

# --- integrity checks (used by the contract suite and `journeygraph query`)

DUPLICATE_FACT_IDS = "MATCH (f:Fact) WITH f.id AS id, count(*) AS c WHERE c > 1 RETURN id, c ORDER BY id"
FACTS_WITHOUT_LINKS = (
    "MATCH (f:Fact) WITH f, size([(f)-[:ABOUT]->() | 1]) AS about, size([(f)-[:DERIVED_FROM]->() | 1]) AS derived "
    "WHERE about <> 2 OR derived <> 1 RETURN f.id AS id, about, derived ORDER BY id"
)
DUPLICATE_PREDICATE_EDGES = (
    "MATCH ()-[r]->() WHERE r.fact_id IS NOT NULL WITH r.fact_id AS id, count(*) AS c WHERE c > 1 "
    "RETURN id, c ORDER BY id"
)
