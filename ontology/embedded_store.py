"""The default fact store: a persistent Oxigraph store in `<workspace>/facts`, no server.

Writes go straight to pyoxigraph's bulk loader as N-Quads text, because going
through rdflib's `addN` costs a Python-level term conversion per quad and
transactional `extend`/`load` are 2-3x slower on RocksDB (figures in
README-store.md). The same store is offered through rdflib's
API as `store.dataset` (an oxrdflib-backed `rdflib.Dataset`) for analysts and
for SPARQL through rdflib.

Crash safety without transactions: the bulk loader is not atomic, so each
chunk is written in two phases, first every data quad of its facts, then one
marker quad per fact (`jg:factJson`, the whole fact). Readers, `count` and the
"already stored?" check look only at markers, so a fact is visible only once
it is whole. A write killed mid-batch leaves whole facts plus invisible
partial data; rewriting the batch rewrites exactly the facts without a marker
(RDF set semantics make re-adding their present quads a no-op), so nothing is
duplicated and nothing is missing.

Readers: RocksDB lets one process open the store read-write. `read_only=True`
opens RocksDB's lock-free read-only mode instead, so the web API, CLI readers
and threads read while a writer holds the store. A read-only handle is a
static view of what was committed when it opened (`refresh()` reopens it) and
refuses writes with StoreError.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pyoxigraph as ox

from ontology import rdf
from ontology.errors import StoreError
from ontology.model import Fact
from ontology.validation import validate_facts

if TYPE_CHECKING:
    import rdflib

    from ontology.store import StoreConfig

log = logging.getLogger(__name__)

_FACT_JSON = ox.NamedNode(rdf.NS + "factJson")
_SNAPSHOT_ID = ox.NamedNode(rdf.NS + "snapshotId")
_RDF_SUBJECT = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#subject")
_RDF_PREDICATE = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#predicate")
_RDF_OBJECT = ox.NamedNode("http://www.w3.org/1999/02/22-rdf-syntax-ns#object")


class EmbeddedStore:
    """Facts as reified RDF in Oxigraph, one named graph per snapshot."""

    name: ClassVar[str] = "embedded"
    #: Facts per pair of bulk loads: big enough to amortise RocksDB's per-load file ingestion
    #: (measured 250 vs 330 µs/fact CPU at 10k vs 5k), small enough to bound memory (~45 MB of N-Quads).
    chunk_size: int = 10_000
    #: close() compacts when this handle wrote at least compact_fraction of the stored facts (and
    #: at least compact_min_facts), or when the store holds more SST files than compact_above_files.
    #: Uncompacted lookups at 100k facts measured 8-27 ms p50 (3-8 ms compacted), so big writes compact.
    compact_fraction: float = 0.1
    compact_min_facts: int = 1000
    compact_above_files: int = 200

    def __init__(self, path: Path, *, allowed_properties: Collection[str] = (),
                 forbidden_values: Collection[str] = (), read_only: bool = False) -> None:
        self.path = Path(path)
        self.allowed_properties = frozenset(allowed_properties)
        self.forbidden_values = frozenset(forbidden_values)
        self.read_only = read_only
        self._ox: ox.Store | None = _open_read_only(self.path) if read_only else _open_read_write(self.path)
        self._dataset: Any = None
        self._written = 0  # facts written since the last compaction
        self._loads = 0  # bulk loads since the last compaction

    @classmethod
    def open(cls, cfg: StoreConfig | None, workspace: Path, **options: Any) -> EmbeddedStore:
        """The registry's entry point: the store lives in `<workspace>/facts`.

        `read_only=True` opens a view that takes no lock, so any number of
        readers (threads or processes) can open it while one writer holds the
        store; writes through it raise StoreError.
        """
        return cls(Path(workspace) / "facts", **options)

    def refresh(self) -> None:
        """Reopen a read-only view so it sees facts committed since it was opened (no-op for the writer)."""
        if self.read_only and self._ox is not None:
            self._dataset = None
            self._ox = _open_read_only(self.path)

    @property
    def oxigraph(self) -> ox.Store:
        """The underlying pyoxigraph store (SPARQL, bulk loads)."""
        if self._ox is None:
            raise StoreError(f"the fact store at {self.path} is closed; open it again with open_store")
        return self._ox

    @property
    def dataset(self) -> rdflib.Dataset:
        """The same store through rdflib's API (union default graph, one named graph per snapshot)."""
        if self._dataset is None:
            import rdflib
            from oxrdflib import OxigraphStore

            self._dataset = rdflib.Dataset(store=OxigraphStore(store=self.oxigraph), default_union=True)
            for prefix, iri in rdf.PREFIXES.items():
                self._dataset.bind(prefix, iri)
        return self._dataset

    def write(self, facts: Sequence[Fact]) -> int:
        """Validate every fact, then add the ones not yet stored, chunk by chunk; returns how many were new.

        "How many were new" is the marker count of the touched snapshot graphs
        after minus before (exact: there is one writer), so loading a fact that
        is already stored is harmless: RDF set semantics make it a no-op.
        """
        self._require_writable("write facts")
        facts = list(facts)  # a generator would be used up by validation
        evidence = validate_facts(facts, self.allowed_properties, forbidden_values=self.forbidden_values)
        unique = dict(zip((fact.fact_id for fact in facts), zip(facts, evidence)))
        pairs = [unique[fid] for fid in sorted(unique)]
        graphs = {rdf.snapshot_iri(fact.provenance.snapshot_id) for fact, _ in pairs}
        existing = {g.value for g in self.oxigraph.named_graphs()} & graphs
        before = self._markers_in(existing)
        todo = self._maybe_unstored(pairs, existing)
        for start in range(0, len(todo), self.chunk_size):
            chunk = todo[start:start + self.chunk_size]
            data, markers = rdf.nquads([fact for fact, _ in chunk], [ev for _, ev in chunk])
            try:  # lenient: skip re-validating IRIs we built ourselves (~15% of the load's CPU)
                self.oxigraph.bulk_load(data, ox.RdfFormat.N_QUADS, lenient=True)
                self.oxigraph.bulk_load(markers, ox.RdfFormat.N_QUADS, lenient=True)
            except OSError as exc:
                raise StoreError(f"writing {len(chunk)} facts to {self.path} failed: {exc}; check disk space and rerun (writes are idempotent)") from exc
            self._written += len(chunk)
            self._loads += 2
            log.debug("committed %d facts (%d/%d) to %s", len(chunk), start + len(chunk), len(todo), self.path)
        return self._markers_in(graphs) - before if todo else 0

    #: Facts of existing snapshots probed to guess whether a batch is new (a guess only costs speed).
    _PROBES = 32

    def _maybe_unstored(self, pairs: list[tuple[Fact, str]], existing: set[str]) -> list[tuple[Fact, str]]:
        """The (fact, evidence JSON) pairs to load: all but those known to have a marker.

        A fact of a snapshot with no graph yet cannot be stored. For the
        others, a few evenly spaced facts are probed (exact marker quad, a key
        lookup): if none is stored the batch is taken as new and loaded whole,
        which skips ~90 µs/fact of lookups on a large uncompacted store; if
        some are, every fact is checked so a rewrite stays cheap.
        """
        store = self.oxigraph
        maybe = [pair for pair in pairs if rdf.snapshot_iri(pair[0].provenance.snapshot_id) in existing]
        probes = maybe[::max(1, len(maybe) // self._PROBES)]
        if not any(rdf.marker_quad(fact, ev) in store for fact, ev in probes):
            return pairs
        return [(fact, ev) for fact, ev in pairs
                if rdf.snapshot_iri(fact.provenance.snapshot_id) not in existing or rdf.marker_quad(fact, ev) not in store]

    def _markers_in(self, graphs: Collection[str]) -> int:
        """Facts (markers) stored in these snapshot graphs."""
        if not graphs:
            return 0
        values = " ".join(f"<{g}>" for g in sorted(graphs))
        rows = self.oxigraph.query(
            "SELECT (COUNT(?f) AS ?c) WHERE { VALUES ?g { %s } GRAPH ?g { ?f <%s> ?j } }" % (values, _FACT_JSON.value))
        return _first_count(rows)

    def optimize(self) -> None:
        """Compact RocksDB. Each bulk load lands as new level-0 files; lookups slow down
        with their number (measured 59 ms → 14 ms p50 at 60k facts), so compact after writing."""
        self._require_writable("compact")
        self.oxigraph.optimize()
        self._written = self._loads = 0

    def _worth_compacting(self) -> bool:
        """Small writes into a big store skip compaction (seconds at 100k facts); big ones pay it."""
        if self._sst_files() > self.compact_above_files:
            return True
        return self._written >= self.compact_min_facts and self._written >= self.compact_fraction * self.count()

    def _sst_files(self) -> int:
        """RocksDB table files on disk: what lookups slow down with until compacted (counted across processes)."""
        return sum(1 for entry in os.scandir(self.path) if entry.name.endswith(".sst"))

    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise StoreError(
                f"cannot {action}: the fact store at {self.path} is open read-only; open it with "
                f"open_store(..., read_only=False) in the one process that writes")

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]:
        """Facts matching every filter (entity = subject or object), sorted by fact_id."""
        nodes = self._candidates(entity, predicate, snapshot_id)
        found = []
        for node in nodes:
            fact = self._read(node)
            if fact is None or (predicate and fact.predicate != predicate) or (
                    snapshot_id and fact.provenance.snapshot_id != snapshot_id) or (
                    entity and entity not in (fact.subject, fact.object)):
                continue
            found.append(fact)
        return iter(sorted(found, key=lambda f: f.fact_id))

    def _candidates(self, entity: str | None, predicate: str | None, snapshot_id: str | None) -> set[ox.NamedNode]:
        """Fact nodes from the most selective index lookup the filters allow."""
        store = self.oxigraph
        if entity is not None:
            try:
                node = ox.NamedNode(rdf.entity_iri(entity))
            except Exception:  # a malformed entity id simply matches nothing
                return set()
            return {_named(q.subject) for role in (_RDF_SUBJECT, _RDF_OBJECT) for q in store.quads_for_pattern(None, role, node, None)}
        if predicate is not None:
            if predicate not in rdf.TERM:
                return set()
            term = ox.NamedNode(rdf.NS + predicate)
            return {_named(q.subject) for q in store.quads_for_pattern(None, _RDF_PREDICATE, term, None)}
        graph = ox.NamedNode(rdf.snapshot_iri(snapshot_id)) if snapshot_id is not None else None
        return {_named(q.subject) for q in store.quads_for_pattern(None, _FACT_JSON, None, graph)}

    def _read(self, node: ox.NamedNode) -> Fact | None:
        quad = next(iter(self.oxigraph.quads_for_pattern(node, _FACT_JSON, None, None)), None)
        return None if quad is None else Fact.from_dict(json.loads(_literal(quad.object)))

    def get(self, fact_id: str) -> Fact | None:
        return self._read(ox.NamedNode(rdf.fact_iri(fact_id)))

    def count(self) -> int:
        rows = self.oxigraph.query(
            "SELECT (COUNT(?f) AS ?c) WHERE { GRAPH ?g { ?f <%s> ?j } }" % _FACT_JSON.value)
        return _first_count(rows)

    def snapshot_ids(self) -> list[str]:
        """Snapshots that have facts (one named graph each), sorted."""
        rows = self.oxigraph.quads_for_pattern(None, _SNAPSHOT_ID, None, None)
        return sorted({_literal(q.object) for q in rows})

    def close(self) -> None:
        """Drop every reference to the Oxigraph store so RocksDB releases its lock now."""
        if self._ox is not None and self._loads and not self.read_only and self._worth_compacting():
            self.optimize()  # the next reader (often another CLI command) gets compacted files
        had_dataset = self._dataset is not None
        self._dataset = None
        self._ox = None
        if had_dataset:  # rdflib's Dataset holds reference cycles; free them so the lock goes too
            gc.collect()

    def __enter__(self) -> EmbeddedStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_read_write(path: Path) -> ox.Store:
    """The one writer: RocksDB's lock makes a second read-write open (any process) fail."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        return ox.Store(str(path))
    except OSError as exc:
        raise StoreError(
            f"cannot open the embedded fact store at {path}: {exc}; another journeygraph "
            f"process (or an unclosed store in this one) holds it: close it or use another workspace "
            f"(readers can open it with read_only=True)"
        ) from exc


#: Opening read-only while the writer appends to RocksDB's MANIFEST can meet a half-written record; retry.
_READ_ONLY_ATTEMPTS = 5


def _open_read_only(path: Path) -> ox.Store:
    """A lock-free static view of what was committed when it opened (see README-store.md).

    A workspace whose store was never written reads as empty rather than failing,
    so readers of a fresh workspace show "no facts"; nothing is created on disk.
    """
    if not (path / "CURRENT").is_file():
        log.debug("no fact store at %s yet; reading it as empty", path)
        return ox.Store()
    for attempt in range(1, _READ_ONLY_ATTEMPTS + 1):
        try:
            return ox.Store.read_only(str(path))
        except (OSError, RuntimeError) as exc:  # RocksDB reports corruption as RuntimeError
            if attempt == _READ_ONLY_ATTEMPTS:
                raise StoreError(
                    f"cannot open the embedded fact store at {path} read-only: {exc}; "
                    f"check the directory is a journeygraph fact store and readable"
                ) from exc
            time.sleep(0.05 * attempt)
    raise AssertionError("unreachable")


def _first_count(rows: Any) -> int:
    """The single COUNT of a one-row SPARQL SELECT."""
    solutions = rows if isinstance(rows, ox.QuerySolutions) else None
    if solutions is None:
        raise TypeError(f"expected SELECT solutions, got {type(rows).__name__}")
    return int(_literal(next(iter(solutions))[0]))


def _named(term: Any) -> ox.NamedNode:
    """Fact subjects are IRIs by construction (rdf.fact_iri)."""
    if not isinstance(term, ox.NamedNode):
        raise TypeError(f"expected an IRI, got {term!r}")
    return term


def _literal(term: Any) -> str:
    """The lexical value of an IRI or literal (never a quoted triple here)."""
    if isinstance(term, ox.Triple):
        raise TypeError(f"expected a literal, got a quoted triple {term!r}")
    return str(term.value)
