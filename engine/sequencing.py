"""Number the accepted events (seq, session) and write them to `events`; engine.normalize's last step.

A full run sequences every accepted event. An incremental run (engine.incremental) sequences the new
accepted events together with every stored event of the same actors, and writes whole partitions
(tenant, UTC day): those holding a new event or a stored event whose seq or session changed, with the
partition's other stored events as they were; engine.silver then replaces exactly those partitions.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from engine import incremental, silver
from engine.arrow_scan import fetch, in_batches
from ontology.errors import EngineError

EVENTS_DDL = """CREATE OR REPLACE TABLE events (
    tenant_id VARCHAR NOT NULL, actor_id VARCHAR NOT NULL, event_id VARCHAR NOT NULL, event_name VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, received_at TIMESTAMP, session_id VARCHAR, platform VARCHAR, user_agent VARCHAR,
    properties JSON, input_order BIGINT, seq BIGINT,
    state_raw VARCHAR, state_semantic VARCHAR, state_lifecycle VARCHAR)"""
CHUNK_EVENTS = 2_000_000  # accepted events sequenced in one numpy pass: bounds memory on big inputs
_BATCH_ROWS = 500_000  # rows of a streamed key batch
_ACTOR_HASH = "hash(tenant_id, actor_id, {salt})"  # groups an actor's keys for numpy (checked: one hash, one actor)
# Salts after the first hash one string: DuckDB combines the columns' own hashes, so two ids whose hashes are equal
# would share every salt of _ACTOR_HASH and the passes would never end.
_SALTED_HASH = "hash(concat(tenant_id, chr(0), actor_id, chr(0), '{salt}'))"
_MAX_SALTS = 8  # more collisions than this are not chance: a clear error, not a loop
ACTOR_HASH = "actor_hash"  # the flags' column holding the salt-0 actor hash (engine.normalize writes it with `actor_hash_sql`)
_TS_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # ticks per second of an Arrow timestamp
_STORED = "_jg_stored_events"
_KEYS = "_jg_keys"  # the new events' numbers, one row per staged_events row (null where not accepted)
_STORED_KEYS = "_jg_stored_keys"  # an incremental run's stored events, re-sequenced (by input order)
_OVERRIDES = ("actor_override", "event_id_override")  # an id the staged row does not hold (resolved, generated, suffixed)
# POSITIONAL JOIN: row i of staged_events meets row i of the keys (no hash join of 10 M keys). The input
# order must match: rejected rows (null keys) drop out, and so would a misaligned row (caught by the count check).
_WIDE = f"""SELECT s.tenant_id, coalesce(k.actor_override, s.user_id, s.anonymous_id) AS actor_id,
                   coalesce(k.event_id_override, s.event_id), s.event_name, s.ts, s.received_at,
                   actor_id || '#' || k.session_no AS session_id, s.platform, s.user_agent, s.properties,
                   s.input_order, k.seq, s.event_name AS state_raw, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR)
            FROM staged_events s POSITIONAL JOIN {_KEYS} k WHERE k.input_order = s.input_order"""


@dataclass(frozen=True)
class Accepted:
    """What the sorted pass over the accepted keys already knows (no second scan of `events` for the summary).

    Counts only new events (an incremental run also sequences stored ones); `inserted` is what the INSERT
    of new events wrote, checked against `events` by the caller.
    """

    events: int = 0
    actors: int = 0
    start: datetime | None = None
    end: datetime | None = None
    inserted: int = 0

    def add(self, ts: np.ndarray, ts_type: pa.DataType, new_actor: np.ndarray, stored: np.ndarray) -> Accepted:
        """Count keys sorted by actor: their times (`ts` as integers of `ts_type`), actor starts, stored flags."""
        fresh = ~stored
        n_fresh = int(fresh.sum())
        if not n_fresh:
            return self
        n_actors = int(new_actor.sum())
        old_actor = np.bincount(np.cumsum(new_actor) - 1, weights=stored.astype(np.float64), minlength=n_actors) > 0
        fresh_ts = ts[fresh] if n_fresh < len(ts) else ts
        start, end = pa.array([fresh_ts.min(), fresh_ts.max()], pa.int64()).cast(ts_type).to_pylist()
        return Accepted(events=self.events + n_fresh, actors=self.actors + int((~old_actor).sum()),
                        start=start if self.start is None else min(self.start, start),
                        end=end if self.end is None else max(self.end, end))


def write_events(con: duckdb.DuckDBPyConnection, flagged: str, gap_s: int, run: incremental.Plan | None) -> Accepted:
    """Accepted events with seq and session: numpy sorts narrow integer keys, the wide rows are joined by position.

    The keys (an actor hash, time, input order, staged row) come unsorted; numpy orders them by actor, time
    and input order (unique: engine.incremental keeps every file's index, so the event id never broke a
    tie), numbers the rows and sessions, and lays the numbers out like `staged_events`, whose wide rows
    then meet them in a POSITIONAL JOIN. DuckDB's ORDER BY of the string keys and a hash join of 10 M keys
    cost 25 CPU-s at 10 M events. Actors are cut into hash classes of about CHUNK_EVENTS rows (memory stays
    bounded); the hash is checked against the exact count of actors (a collision draws another hash).
    """
    accepted_keys = f"""SELECT tenant_id, actor_id, {ACTOR_HASH}, ts, input_order, staged_row,
                               CASE WHEN mapped THEN actor_id END AS actor_override,
                               CASE WHEN made_id THEN event_id END AS event_id_override
                        FROM {flagged} WHERE NOT duplicate AND NOT bot AND NOT coalesce(late_raw, false)"""
    keys_sql = (incremental.touched_keys_sql(accepted_keys) if run is not None
                else f"SELECT *, false AS stored FROM ({accepted_keys})")
    staged = _Staged(con)
    actors = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT tenant_id, actor_id FROM ({keys_sql}))").fetchall()[0][0]
    classes = max(1, -(-staged.rows // CHUNK_EVENTS))
    for salt in range(_MAX_SALTS):  # another pass only if two actors share a hash (odds about n^2 / 2^65: 3 in 10^6 at 10 M actors)
        tally = _Tally(staged)
        _sort_classes(con, keys_sql, _hash_sql(salt, run), classes, gap_s, tally.place)
        if tally.found == actors:
            break
    else:
        raise EngineError(f"sequencing: {actors} actors still share hashes after {_MAX_SALTS} salts "
                          f"({tally.found} runs found); the events were not written")
    accepted, stored_parts = tally.accepted, tally.stored_parts
    staged.override(fetch(con, f"""SELECT staged_row, actor_override, event_id_override FROM ({accepted_keys})
                                   WHERE actor_override IS NOT NULL OR event_id_override IS NOT NULL"""))
    _keep_rejected(con, flagged)
    con.register(_KEYS, in_batches(staged.table()))
    del staged, tally  # the numbers are in the registered table now
    con.register(_STORED_KEYS, in_batches(pa.concat_tables(stored_parts) if stored_parts else _empty_keys()))
    try:
        if run is not None:
            silver.create_view(con, "events", name=_STORED)  # the stored events, still readable once shadowed
        create_events_table(con)
        inserted = con.execute(f"INSERT INTO events {_WIDE}").fetchall()[0][0]
        if run is not None:  # the actors whose journeys are cut again (a stored table: journeys reads it on a cursor)
            con.execute(f"CREATE OR REPLACE TABLE {incremental.TOUCHED} AS SELECT DISTINCT tenant_id, actor_id FROM events")
            _changed_partitions(con, run)
    finally:
        con.unregister(_KEYS)
        con.unregister(_STORED_KEYS)
        con.execute(f"DROP VIEW IF EXISTS {_STORED}")
    return Accepted(accepted.events, accepted.actors, accepted.start, accepted.end, int(inserted))


def _hash_sql(salt: int, run: incremental.Plan | None) -> str:
    """The keys' actor hash: salt 0 is the one the flags hold (reading it, not the ids, is what saves the passes'
    time); an incremental run's stored events have none and are hashed here."""
    if salt:
        return actor_hash_sql(salt)
    return ACTOR_HASH if run is None else f"coalesce({ACTOR_HASH}, {actor_hash_sql(0)})"


def _sort_classes(con: duckdb.DuckDBPyConnection, keys_sql: str, hashed: str, classes: int, gap_s: int,
                  place: Callable[[_Sorted], None]) -> None:
    """Each hash class of whole actors sorted and numbered (`_sort`), then given to `place`, in class order.

    The sort of class k runs on a second thread while DuckDB fetches class k + 1 (numpy's sort releases
    the GIL); a class is placed and dropped before the next fetch, so at most two classes' arrays are held.
    """
    def keys(part: int) -> pa.Table:
        return fetch(con, f"""SELECT * FROM (SELECT {hashed} AS h, ts, input_order,
                                                    coalesce(staged_row, -1) AS staged_row, stored FROM ({keys_sql}))
                              WHERE h % {classes} = {part}""", rows=_BATCH_ROWS)
    if classes == 1:
        place(_sort(keys(0), gap_s))
        return
    with ThreadPoolExecutor(1, thread_name_prefix="jg-sequence") as pool:
        pending = pool.submit(_sort, keys(0), gap_s)
        for part in range(1, classes):
            fetched = keys(part)
            place(pending.result())
            pending = pool.submit(_sort, fetched, gap_s)
            del fetched
        place(pending.result())


def actor_hash_sql(salt: int = 0) -> str:
    """SQL of an actor's hash (columns tenant_id, actor_id): its keys' hash class and run in the numpy sort."""
    return (_SALTED_HASH if salt else _ACTOR_HASH).format(salt=salt)


@dataclass(frozen=True)
class _Sorted:
    """One hash class's keys in (actor hash, time, input order) order with their numbers."""

    staged_row: np.ndarray
    ts: np.ndarray
    ts_type: pa.DataType
    input_order: np.ndarray
    new_actor: np.ndarray
    seq: np.ndarray
    session: np.ndarray
    stored: np.ndarray


def _sort(keys: pa.Table, gap_s: int) -> _Sorted:
    """Sort one hash class of whole actors by (actor hash, time, input order) and number its rows and sessions."""
    h = keys.column("h").to_numpy()
    ts_type = keys.schema.field("ts").type
    ts = keys.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    input_order = keys.column("input_order").to_numpy()
    order = np.lexsort((input_order, ts, h))
    h = h[order]
    new_actor = np.ones(len(h), dtype=bool)
    new_actor[1:] = h[1:] != h[:-1]
    ts, input_order = ts[order], input_order[order]
    seq, session = _numbers(ts, new_actor, gap_s * _TS_UNITS[ts_type.unit])
    return _Sorted(staged_row=keys.column("staged_row").to_numpy()[order], ts=ts, ts_type=ts_type,
                   input_order=input_order, new_actor=new_actor, seq=seq, session=session,
                   stored=keys.column("stored").to_numpy(zero_copy_only=False)[order])


class _Tally:
    """The sorted hash classes placed so far: new events' numbers in `staged`, stored events' in `stored_parts`,
    the actors found (hash runs) and the counts."""

    def __init__(self, staged: _Staged) -> None:
        self.staged, self.stored_parts, self.found, self.accepted = staged, list[pa.Table](), 0, Accepted()

    def place(self, keys: _Sorted) -> None:
        stored, rows, input_order, seq, session = keys.stored, keys.staged_row, keys.input_order, keys.seq, keys.session
        self.accepted = self.accepted.add(keys.ts, keys.ts_type, keys.new_actor, stored)
        if stored.any():  # an incremental run: the stored events are re-numbered, the new ones go to staged rows
            self.stored_parts.append(pa.table({"input_order": input_order[stored], "seq": seq[stored],
                                               "session_no": session[stored]}))
            fresh = ~stored
            rows, input_order, seq, session = rows[fresh], input_order[fresh], seq[fresh], session[fresh]
        self.staged.put(rows, input_order, seq, session)
        self.found += int(keys.new_actor.sum())


class _Staged:
    """The new events' numbers laid out like `staged_events`: row i holds the numbers of its i-th row.

    A table's row position is its rowid unless rows were deleted (ingest drops a file it could not stream
    and reads it again); then it is the rowid's rank among the rows left. Numbers are written in place.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rows, top = con.execute("SELECT count(*), max(rowid) FROM staged_events").fetchall()[0]
        self.live = (None if not self.rows or top + 1 == self.rows
                     else np.sort(con.sql("SELECT rowid AS r FROM staged_events").fetchnumpy()["r"]))
        small = np.int32 if self.rows < 2**31 else np.int64  # seq and session number are below the row count
        self.present = np.zeros(self.rows, dtype=bool)
        self.numbers = {"input_order": np.zeros(self.rows, dtype=np.int64), "seq": np.zeros(self.rows, dtype=small),
                        "session_no": np.zeros(self.rows, dtype=small)}
        self.ids = {name: pa.nulls(self.rows) for name in _OVERRIDES}  # most inputs: no buffer at all

    def _at(self, rows: np.ndarray) -> np.ndarray:
        return rows if self.live is None else np.searchsorted(self.live, rows)

    def put(self, rows: np.ndarray, input_order: np.ndarray, seq: np.ndarray, session: np.ndarray) -> None:
        at = self._at(rows)
        self.present[at] = True
        for name, values in zip(self.numbers, (input_order, seq, session), strict=True):
            self.numbers[name][at] = values

    def override(self, ids: pa.Table) -> None:
        """The ids that differ from the staged row's, by staged row."""
        if not ids.num_rows:
            return
        source = np.full(self.rows, -1, dtype=np.int64)
        source[self._at(ids.column("staged_row").to_numpy())] = np.arange(ids.num_rows)
        taken = pa.array(source, mask=source < 0)
        self.ids = {name: ids.column(name).take(taken) for name in _OVERRIDES}

    def table(self) -> pa.Table:
        """One row per staged row: the numbers (and changed ids) of its accepted event, nulls for any other row."""
        table = pa.table(self.ids)
        for name, values in self.numbers.items():  # input_order null where no event: the INSERT's alignment check
            table = table.append_column(name, pa.array(values, mask=~self.present if name == "input_order" else None))
        return table


def _keep_rejected(con: duckdb.DuckDBPyConnection, flagged: str) -> None:
    """Cut the flags table down to the rejected rows (all its later readers need) once the keys are fetched.

    Why: at 10 M events the accepted rows' flags are ~0.8 GB that would otherwise sit in memory (and spill)
    through the wide INSERT below.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {flagged} AS SELECT * FROM {flagged} "
                "WHERE duplicate OR bot OR coalesce(late_raw, false)")


def create_events_table(con: duckdb.DuckDBPyConnection) -> None:
    """An empty `events` table (also engine.spark's): in a workspace a TEMP working copy shadowing the silver
    view, written out as Parquet by engine.silver."""
    if silver.root_of(con) is not None:
        con.execute("DROP VIEW IF EXISTS temp.main.events")
        con.execute(EVENTS_DDL.replace("CREATE OR REPLACE TABLE", "CREATE OR REPLACE TEMP TABLE"))
    else:
        con.execute(EVENTS_DDL)


def _changed_partitions(con: duckdb.DuckDBPyConnection, run: incremental.Plan) -> None:
    """Add the stored rows of every partition that changes: one with a new event, or a stored event re-sequenced."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_parts AS
        SELECT DISTINCT tenant_id, CAST(ts AS DATE) AS day FROM events
        UNION
        SELECT e.tenant_id, CAST(e.ts AS DATE) FROM {_STORED} e JOIN {_STORED_KEYS} k ON k.input_order = e.input_order
        WHERE e.seq <> k.seq OR e.session_id <> e.actor_id || '#' || k.session_no""")
    sealed = run.sealed_before()
    if sealed is not None:
        n = con.execute("SELECT count(*) FROM _jg_parts WHERE day + INTERVAL 1 DAY <= ?", [sealed]).fetchall()[0][0]
        if n:  # cannot happen under the late rule (docs/contracts.md); refuse rather than rewrite a sealed day
            raise incremental.FullRecompute(f"{n} sealed day partitions would change")
    low = con.execute("SELECT min(day) FROM _jg_parts").fetchall()[0][0]
    if low is None:
        return
    con.execute(f"""
        INSERT INTO events
        SELECT e.* REPLACE (coalesce(k.seq, e.seq) AS seq,
                            CASE WHEN k.input_order IS NULL THEN e.session_id ELSE e.actor_id || '#' || k.session_no END
                              AS session_id)
        FROM {_STORED} e SEMI JOIN _jg_parts p ON p.tenant_id = e.tenant_id AND p.day = CAST(e.ts AS DATE)
        LEFT JOIN {_STORED_KEYS} k ON k.input_order = e.input_order
        WHERE e.ts >= DATE '{low:%Y-%m-%d}'  -- a literal bound: older day files are not read""")
    con.execute("DROP TABLE _jg_parts")


def _empty_keys() -> pa.Table:
    return pa.table({"input_order": pa.array([], pa.int64()), "seq": pa.array([], pa.int64()),
                     "session_no": pa.array([], pa.int64())})


def _sequence(keys: pa.Table, new_actor: np.ndarray, gap_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(seq from 0, session number from 1) per row of keys sorted by tenant, actor and time (engine.spark's buckets)."""
    ts = keys.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    return _numbers(ts, new_actor, gap_s * _TS_UNITS[keys.schema.field("ts").type.unit])


def _numbers(ts: np.ndarray, new_actor: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """(seq from 0, session number from 1) per row of times sorted by actor and time.

    A session starts at an actor's first event (`new_actor`) and after any silence longer than `gap` ticks.
    """
    n = len(ts)
    first = np.flatnonzero(new_actor)
    actor = np.cumsum(new_actor) - 1
    seq = np.arange(n, dtype=np.int64) - first[actor]
    new_session = new_actor.copy()
    new_session[1:] |= np.diff(ts) > gap
    sessions = np.cumsum(new_session)
    return seq, sessions - sessions[first[actor]] + 1
