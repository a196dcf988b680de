"""The scale-out fact store: a Neo4j (or any Neo4j-compatible Bolt server) graph via the official driver.

Facts become `Fact` nodes linked to typed entity nodes and to their
`Snapshot`, plus one predicate-typed relationship between subject and object,
so analysts can query the graph in plain Cypher (`journeygraph query
--cypher`). Writes are batched `UNWIND` statements in one transaction per
batch: a batch is either fully there or not at all, and re-running a write
after a crash only adds what is missing (idempotent on fact_id). All Cypher
lives in `ontology.cypher`; the few server differences in `ontology.dialect`.

tenacity owns retries: transient driver errors (server restarting, leader
switch, lock timeouts) are retried with bounded, jittered exponential
backoff; a server that stays away becomes one `StoreUnavailable` line naming
the URI and the fix.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from neo4j import READ_ACCESS, WRITE_ACCESS, Driver, GraphDatabase, ManagedTransaction, Record
from neo4j.exceptions import (
    AuthError,
    ConfigurationError,
    ConstraintError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from ontology import cypher
from ontology.dialect import Dialect, for_agent
from ontology.errors import StoreError, StoreUnavailable
from ontology.model import Fact, Provenance, canonical_json
from ontology.vocabulary import ENTITY_KINDS, PREDICATES, entity_kind

if TYPE_CHECKING:
    from ontology.store import StoreConfig

log = logging.getLogger(__name__)

T = TypeVar("T")
DEFAULT_URI = "bolt://127.0.0.1:7687"
BOLT_SCHEMES = ("bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc")
TRANSIENT = (ServiceUnavailable, SessionExpired, TransientError)
UNREACHABLE = (ServiceUnavailable, SessionExpired, OSError)


@dataclass(frozen=True)
class Connection:
    """Where the server is and who we are: StoreConfig first, then NEO4J_* variables, then defaults."""

    uri: str
    user: str | None
    password: str | None
    database: str | None

    @classmethod
    def resolve(cls, cfg: StoreConfig | None, environ: os._Environ[str] | dict[str, str] = os.environ) -> Connection:
        def pick(attr: str, var: str) -> str | None:
            value = getattr(cfg, attr, None) if cfg is not None else None
            return value or environ.get(var) or None

        return cls(uri=pick("uri", "NEO4J_URI") or DEFAULT_URI, user=pick("user", "NEO4J_USER"),
                   password=pick("password", "NEO4J_PASSWORD"), database=pick("database", "NEO4J_DATABASE"))

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user or "neo4j", self.password) if self.password is not None else None


class Neo4jStore:
    """FactStore over Bolt. Open with `Neo4jStore.open(cfg, workspace)` (what `open_store("neo4j", …)` calls)."""

    name: ClassVar[str] = "neo4j"

    def __init__(self, driver: Driver, conn: Connection, dialect: Dialect, *, allowed_properties: Sequence[str] = (),
                 timeout_s: float = 5.0, max_attempts: int = 5) -> None:
        self._driver = driver
        self.conn = conn
        self.dialect = dialect
        self.allowed_properties = tuple(allowed_properties)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, cfg: StoreConfig | None = None, workspace: Path | None = None, *,
             allowed_properties: Sequence[str] = (), timeout_s: float = 5.0, max_attempts: int = 5,
             batch_size: int | None = None) -> Neo4jStore:
        """Connect, check the server answers, pick the dialect and create constraints/indexes.

        `workspace` is accepted for the open_store signature; a server store keeps nothing locally.
        """
        conn = Connection.resolve(cfg)
        try:
            if conn.uri.partition("://")[0] not in BOLT_SCHEMES:
                raise ValueError(f"scheme must be one of {', '.join(BOLT_SCHEMES)}")
            driver = GraphDatabase.driver(conn.uri, auth=conn.auth, connection_timeout=timeout_s,
                                          connection_acquisition_timeout=2 * timeout_s, max_transaction_retry_time=0)
        except (ValueError, ConfigurationError) as exc:
            raise StoreError(f"store.uri {conn.uri!r} is not a Bolt URI ({_one_line(exc)}); "
                             "use bolt://host:7687 or neo4j://host:7687 (or set NEO4J_URI)") from exc
        try:
            driver.verify_connectivity()
            dialect = for_agent(driver.get_server_info().agent)
            if batch_size:
                dialect = Dialect(dialect.name, batch_size, dialect.schema)
            store = cls(driver, conn, dialect, allowed_properties=allowed_properties, timeout_s=timeout_s,
                        max_attempts=max_attempts)
            store._ensure_schema()
        except AuthError as exc:
            driver.close()
            raise StoreError(f"Neo4j at {conn.uri} refused user {conn.auth[0] if conn.auth else None!r} "
                             f"({_one_line(exc)}); set store.user/store.password or NEO4J_USER/NEO4J_PASSWORD") from exc
        except UNREACHABLE as exc:
            driver.close()
            raise StoreUnavailable(f"Neo4j at {conn.uri} did not answer in {timeout_s:g} s; "
                                   "start it or set store.backend: embedded") from exc
        except BaseException:
            driver.close()
            raise
        log.debug("opened %s store at %s (database %s)", dialect.name, conn.uri, conn.database)
        return store

    def _ensure_schema(self) -> None:
        """Idempotent constraints and indexes, before any bulk MERGE (ArcadeDB needs them for speed)."""
        def run(tx: ManagedTransaction, statement: str) -> None:
            tx.run(statement).consume()

        for statement in self.dialect.schema:
            try:
                self._call(WRITE_ACCESS, partial(run, statement=statement))
            except Neo4jError as exc:
                if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                    raise StoreError(f"Neo4j at {self.conn.uri} has no database {self.conn.database!r}; "
                                     "create it or set store.database / NEO4J_DATABASE") from exc
                raise StoreError(f"Neo4j at {self.conn.uri} refused schema statement ({_one_line(exc)}); "
                                 "check the server version (Neo4j 5 or ArcadeDB with Bolt)") from exc

    # ------------------------------------------------------------ transactions

    def _call(self, mode: str, work: Callable[[ManagedTransaction], T], *, retry_on: tuple[type[BaseException], ...] = TRANSIENT,
              timeout_s: float | None = None) -> T:
        """Run `work` in one explicit transaction, retried on transient errors; tenacity owns the retries."""
        retrying = Retrying(stop=stop_after_attempt(self.max_attempts), wait=wait_random_exponential(multiplier=0.2, max=3.0),
                            retry=retry_if_exception_type(retry_on), reraise=True,
                            before_sleep=self._log_retry)
        try:
            for attempt in retrying:
                with attempt:
                    return self._transaction(mode, work, timeout_s)
        except (ServiceUnavailable, SessionExpired) as exc:
            raise StoreUnavailable(f"Neo4j at {self.conn.uri} stopped answering after {self.max_attempts} attempts "
                                   f"({type(exc).__name__}); start it and re-run (writes are idempotent) "
                                   "or set store.backend: embedded") from exc
        except (TransientError, ConstraintError) as exc:
            raise StoreError(f"Neo4j at {self.conn.uri} kept failing after {self.max_attempts} attempts "
                             f"({type(exc).__name__}: {_one_line(exc)}); retry later") from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("Neo4j at %s: %s; retry %d of %d", self.conn.uri, _one_line(error), state.attempt_number,
                    self.max_attempts - 1)

    def _transaction(self, mode: str, work: Callable[[ManagedTransaction], T], timeout_s: float | None = None) -> T:
        with self._driver.session(database=self.conn.database, default_access_mode=mode) as session:
            with session.begin_transaction(timeout=timeout_s) as tx:
                result = work(tx)  # type: ignore[arg-type]
                tx.commit()
                return result

    # ------------------------------------------------------------------ writes

    def write(self, facts: Sequence[Fact]) -> int:
        """Validate every fact, then upsert them in batches; returns how many were new."""
        from ontology.validation import validate_facts  # the one check every backend runs (validate_fact per fact)

        evidence = validate_facts(facts, self.allowed_properties)  # canonical evidence JSON, reused for the rows
        unique = sorted({f.fact_id: (f, e) for f, e in zip(facts, evidence)}.values(), key=lambda fe: fe[0].fact_id)
        rows = [(_statement_key(f), _fact_row(f, e)) for f, e in unique]
        written = 0
        for start in self.dialect.batches(len(rows)):
            batch = rows[start:start + self.dialect.batch_size]
            written += self._call(WRITE_ACCESS, partial(_write_batch, rows=batch), retry_on=(*TRANSIENT, ConstraintError))
        log.debug("wrote %d new of %d facts to %s", written, len(rows), self.conn.uri)
        return written

    # ------------------------------------------------------------------- reads

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]:
        """Facts matching every given filter (entity = subject or object), sorted by fact_id."""
        if predicate is not None and predicate not in PREDICATES:
            return iter([])  # like every backend: a filter no fact can match selects nothing
        params = {"entity": entity, "predicate": predicate, "snapshot_id": snapshot_id}
        if entity is not None:
            label = ENTITY_KINDS.get(entity.partition(":")[0])
            if label is None:
                return iter([])
            query = cypher.FACTS_BY_ENTITY[label]
        elif predicate is not None:
            query = cypher.FACTS_BY_PREDICATE
        elif snapshot_id is not None:
            query = cypher.FACTS_BY_SNAPSHOT
        else:
            query = cypher.ALL_FACTS
        records = self._call(READ_ACCESS, lambda tx: list(tx.run(query, params)))
        return iter([_record_fact(r) for r in records])

    def get(self, fact_id: str) -> Fact | None:
        records = self._call(READ_ACCESS, lambda tx: list(tx.run(cypher.GET_FACT, fact_id=fact_id)))
        return _record_fact(records[0]) if records else None

    def count(self) -> int:
        return int(self._call(READ_ACCESS, lambda tx: tx.run(cypher.COUNT_FACTS).single(strict=True)["n"]))

    def cypher(self, query: str, params: dict[str, Any] | None = None, *, timeout_s: float | None = None,
               max_rows: int | None = None) -> list[dict[str, Any]]:
        """Run an analyst's read-only Cypher (`journeygraph query --cypher`); a query that writes is rolled back.

        LOAD CSV and procedures that reach files or the network are refused before the query is sent; the
        transaction gets a server-side timeout and the client a deadline (`timeout_s`), and at most `max_rows`
        rows are read (`ontology.query_guard` defaults).
        """
        from ontology import query_guard

        query_guard.check_cypher(query)
        limit = query_guard.MAX_ROWS if max_rows is None else max_rows
        seconds = query_guard.TIMEOUT_S if timeout_s is None else timeout_s

        def work(tx: ManagedTransaction) -> list[dict[str, Any]]:
            result = tx.run(query, params or {})
            rows = query_guard.take((record.data() for record in result), limit, log.warning)
            if result.consume().counters.contains_updates:
                raise _WriteAttempt()
            return rows

        try:
            return query_guard.run_with_deadline(lambda: self._call(READ_ACCESS, work, timeout_s=seconds), seconds,
                                                 "Cypher query")
        except _WriteAttempt:
            raise StoreError("the Cypher query tries to change the graph and was rolled back; "
                             "`query --cypher` is read-only (use MATCH … RETURN)") from None
        except Neo4jError as exc:
            if (exc.code or "").startswith("Neo.ClientError.Statement"):
                raise StoreError(f"Cypher query refused by Neo4j at {self.conn.uri}: {_one_line(exc)}; fix the query") from exc
            raise StoreError(f"Cypher query failed on Neo4j at {self.conn.uri}: {_one_line(exc)}") from exc

    def close(self) -> None:
        self._driver.close()

    def __enter__(self) -> Neo4jStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


Neo4jFactStore = Neo4jStore  # the name used in the issue text


class _WriteAttempt(Exception):
    """Raised inside a read transaction so the explicit transaction rolls back instead of committing."""


def _one_line(exc: BaseException | None) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:300]


# ---------------------------------------------------------------- row mapping


def _fact_row(fact: Fact, evidence_json: str | None = None) -> dict[str, Any]:
    """The UNWIND row of one fact; `evidence_json` is validate_facts' canonical JSON (serialising twice cost ~25% of client CPU)."""
    prov = fact.provenance
    return {
        "fact_id": fact.fact_id, "subject": fact.subject, "predicate": fact.predicate, "object": fact.object,
        "confidence": float(fact.confidence), "valid_from": fact.valid_from, "valid_to": fact.valid_to,
        "evidence": evidence_json if evidence_json is not None else canonical_json(dict(fact.evidence)),
        "provenance": _provenance_json(prov),
        "snapshot_id": prov.snapshot_id,
        "detector": prov.detector, "config_hash": prov.config_hash, "engine_version": prov.engine_version,
        "journey": fact.evidence.get("journey"), "subject_name": fact.subject.partition(":")[2],
    }


def _nested(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows grouped snapshot -> object -> facts, the shape cypher.WRITE_FACTS unwinds (shared nodes MERGEd once)."""
    snapshots: dict[str, dict[str, Any]] = {}
    for row in rows:
        snap = snapshots.setdefault(row["snapshot_id"], {"node": f"snapshot:{row['snapshot_id']}",
                                                         "name": row["snapshot_id"], "objects": {}})
        obj = snap["objects"].setdefault(row["object"], {"id": row["object"], "name": row["object"].partition(":")[2],
                                                         "rows": []})
        obj["rows"].append(row)
    return [{**snap, "objects": list(snap["objects"].values())} for snap in snapshots.values()]


@lru_cache(maxsize=1024)
def _provenance_json(prov: Provenance) -> str:
    """A batch has a handful of provenances (one per detector and snapshot): serialise each once."""
    return canonical_json({"snapshot_id": prov.snapshot_id, "detector": prov.detector,
                           "config_hash": prov.config_hash, "engine_version": prov.engine_version})


def _statement_key(fact: Fact) -> tuple[str, str, str]:
    """Which constant statement of cypher.WRITE_FACTS writes this fact: (predicate, subject label, object label)."""
    return (fact.predicate, entity_kind(fact.subject), entity_kind(fact.object))


def _write_batch(tx: ManagedTransaction, rows: Sequence[tuple[tuple[str, str, str], dict[str, Any]]]) -> int:
    """One batch in one transaction: skip facts already stored, create the rest with entities and links."""
    existing = {r["id"] for r in tx.run(cypher.EXISTING_FACT_IDS, ids=[row["fact_id"] for _, row in rows])}
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for key, row in rows:
        if row["fact_id"] not in existing:
            groups[key].append(row)
    for key, group in sorted(groups.items()):
        tx.run(cypher.WRITE_FACTS[key], snapshots=_nested(group)).consume()
    return sum(len(group) for group in groups.values())


def _record_fact(record: Record) -> Fact:
    return Fact(subject=record["subject"], predicate=record["predicate"], object=record["object"],
                confidence=record["confidence"], valid_from=record["valid_from"], valid_to=record["valid_to"],
                evidence=json.loads(record["evidence"]), provenance=Provenance(**json.loads(record["provenance"])),
                fact_id=record["fact_id"])
