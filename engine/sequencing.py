"""Number the accepted events (seq, session) and write them to `events`; engine.normalize's last step.

A full run sequences every accepted event. An incremental run (engine.incremental) sequences the new
accepted events together with every stored event of the same actors, and writes whole partitions
(tenant, UTC day): those holding a new event or a stored event whose seq or session changed, with the
partition's other stored events as they were; engine.silver then replaces exactly those partitions.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import incremental, silver
from engine.actor_batches import new_actor_flags, whole_actor_tables
from engine.arrow_scan import in_batches

EVENTS_DDL = """CREATE OR REPLACE TABLE events (
    tenant_id VARCHAR NOT NULL, actor_id VARCHAR NOT NULL, event_id VARCHAR NOT NULL, event_name VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, received_at TIMESTAMP, session_id VARCHAR, platform VARCHAR, user_agent VARCHAR,
    properties JSON, input_order BIGINT, seq BIGINT,
    state_raw VARCHAR, state_semantic VARCHAR, state_lifecycle VARCHAR)"""
CHUNK_EVENTS = 2_000_000  # accepted events sequenced in one numpy pass: bounds memory on big inputs
_BATCH_ROWS = 500_000
_TS_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # ticks per second of an Arrow timestamp
_STORED = "_jg_stored_events"
_KEYS = "_jg_keys"  # the new events' numbers, one row per staged_events row (null where not accepted)
_STORED_KEYS = "_jg_stored_keys"  # an incremental run's stored events, re-sequenced
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

    def add(self, keys: pa.Table, new_actor: np.ndarray, stored: np.ndarray) -> Accepted:
        n_fresh = int(len(stored) - stored.sum())
        if not n_fresh:
            return self
        any_stored = n_fresh < len(stored)  # a full run stores nothing: no filtered copy of the keys
        ts = keys.column("ts").filter(pa.array(~stored)) if any_stored else keys.column("ts")
        n_actors = int(new_actor.sum())
        old_actor = (np.bincount(np.cumsum(new_actor) - 1, weights=stored.astype(np.float64), minlength=n_actors) > 0
                     if any_stored else np.zeros(n_actors, dtype=bool))
        low, high = pc.min_max(ts).values()
        start, end = low.as_py(), high.as_py()
        return Accepted(events=self.events + n_fresh, actors=self.actors + int((~old_actor).sum()),
                        start=start if self.start is None else min(self.start, start),
                        end=end if self.end is None else max(self.end, end))


def write_events(con: duckdb.DuckDBPyConnection, flagged: str, gap_s: int, run: incremental.Plan | None) -> Accepted:
    """Accepted events with seq and session, in one narrow sort; the wide columns are joined on afterwards.

    Only the keys are sorted (tenant, actor, ts, input order, event id); numpy numbers the rows and the
    sessions along that order, and the table is written unordered (every reader orders by seq): sorting
    and writing the wide rows in order cost three times as much on 1 M events. The wide columns come
    straight from the staging table (the flags table holds keys and flags only, so the rows are not
    copied once more: at 10 M events that copy no longer fits the memory limit and spills), joined by
    position: each key carries its staged row's rowid, and numpy puts its numbers at that row.
    """
    accepted_keys = f"""SELECT tenant_id, actor_id, ts, input_order, event_id, staged_row,
                               CASE WHEN mapped THEN actor_id END AS actor_override,
                               CASE WHEN made_id THEN event_id END AS event_id_override
                        FROM {flagged} WHERE NOT duplicate AND NOT bot AND NOT coalesce(late_raw, false)"""
    keys_sql = (incremental.touched_keys_sql(accepted_keys) if run is not None
                else f"SELECT *, false AS stored FROM ({accepted_keys})")
    staged, stored_parts, accepted = _Staged(con), [], Accepted()  # before the reader holds the connection
    reader = con.sql(f"SELECT * EXCLUDE (event_id) FROM ({keys_sql}) ORDER BY tenant_id, actor_id, ts, input_order, event_id"
                     ).to_arrow_reader(_BATCH_ROWS)
    for keys in whole_actor_tables(reader, CHUNK_EVENTS):  # whole actors at a time: memory stays bounded
        new_actor = new_actor_flags(keys)
        seq, session = _sequence(keys, new_actor, gap_s)
        stored = keys.column("stored").to_numpy(zero_copy_only=False)
        accepted = accepted.add(keys, new_actor, stored)
        if stored.any():  # an incremental run: the stored events are re-numbered, the new ones go to staged rows
            stored_parts.append(_stored_numbers(keys, seq, session, stored))
            fresh = ~stored
            keys, seq, session = keys.filter(pa.array(fresh)), seq[fresh], session[fresh]
        staged.put(keys, seq, session)
    reader.close()  # the sort's memory goes before the layout's comes
    _keep_rejected(con, flagged)
    con.register(_KEYS, in_batches(staged.table()))
    del staged
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


def _stored_numbers(keys: pa.Table, seq: np.ndarray, session: np.ndarray, stored: np.ndarray) -> pa.Table:
    """The stored events' new seq and session number, by input order."""
    picked = keys.filter(pa.array(stored)).select(["input_order", "actor_id"])
    return picked.append_column("seq", pa.array(seq[stored])).append_column("session_no", pa.array(session[stored]))


class _Staged:
    """The new events' numbers laid out like `staged_events`: row i holds the numbers of its i-th row.

    A table's row position is its rowid unless rows were deleted (ingest drops a file it could not stream
    and reads it again); then it is the rowid's rank among the rows left. The chunks are kept as they come
    (in key order) and laid out once the sorted stream is done, so the layout does not sit beside the sort.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.rows, top = con.execute("SELECT count(*), max(rowid) FROM staged_events").fetchall()[0]
        self.live = (None if not self.rows or top + 1 == self.rows
                     else np.sort(con.sql("SELECT rowid AS r FROM staged_events").fetchnumpy()["r"]))
        self.parts: list[pa.Table] = []

    def put(self, keys: pa.Table, seq: np.ndarray, session: np.ndarray) -> None:
        self.parts.append(keys.select(["staged_row", "input_order", "actor_override", "event_id_override"])
                          .append_column("seq", pa.array(seq)).append_column("session_no", pa.array(session)))

    def table(self) -> pa.Table:
        """One row per staged row: the numbers (and changed ids) of its accepted event, nulls for any other row."""
        n = self.rows
        source = np.full(n, -1, dtype=np.int64)  # the row of the concatenated parts each position takes
        small = np.int32 if n < 2**31 else np.int64  # seq and session number are below the row count
        numbers = {"input_order": np.zeros(n, dtype=np.int64), "seq": np.zeros(n, dtype=small),
                   "session_no": np.zeros(n, dtype=small)}
        done = 0
        for i, part in enumerate(self.parts):
            rows = part.column("staged_row").to_numpy()
            at = rows if self.live is None else np.searchsorted(self.live, rows)
            source[at] = np.arange(done, done + len(at))
            for name, values in numbers.items():
                values[at] = part.column(name).to_numpy()
            self.parts[i] = part.select(list(_OVERRIDES))  # the numbers are laid out: free them
            done += len(at)
        ids = pa.concat_tables(self.parts) if self.parts else pa.table({name: pa.array([], pa.string()) for name in _OVERRIDES})
        self.parts = []
        absent = source < 0
        table = pa.table({name: pa.nulls(n) if ids.column(name).null_count == ids.num_rows  # most inputs: no buffer at all
                          else ids.column(name).take(pa.array(source, mask=absent)) for name in _OVERRIDES})
        for name, values in numbers.items():  # input_order null where no event: the INSERT's alignment check
            table = table.append_column(name, pa.array(values, mask=absent if name == "input_order" else None))
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
        WHERE e.seq <> k.seq OR e.session_id <> k.actor_id || '#' || k.session_no""")
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
                            CASE WHEN k.input_order IS NULL THEN e.session_id ELSE k.actor_id || '#' || k.session_no END
                              AS session_id)
        FROM {_STORED} e SEMI JOIN _jg_parts p ON p.tenant_id = e.tenant_id AND p.day = CAST(e.ts AS DATE)
        LEFT JOIN {_STORED_KEYS} k ON k.input_order = e.input_order
        WHERE e.ts >= DATE '{low:%Y-%m-%d}'  -- a literal bound: older day files are not read""")
    con.execute("DROP TABLE _jg_parts")


def _empty_keys() -> pa.Table:
    return pa.table({"input_order": pa.array([], pa.int64()), "actor_id": pa.array([], pa.string()),
                     "seq": pa.array([], pa.int64()), "session_no": pa.array([], pa.int64())})


def _sequence(keys: pa.Table, new_actor: np.ndarray, gap_s: int) -> tuple[np.ndarray, np.ndarray]:
    """(seq from 0, session number from 1) per row of keys sorted by tenant, actor and time.

    A session starts at an actor's first event (`new_actor`) and after any silence longer than `gap_s`.
    """
    n = keys.num_rows
    ts = keys.column("ts").combine_chunks().cast(pa.int64()).to_numpy()
    first = np.flatnonzero(new_actor)
    actor = np.cumsum(new_actor) - 1
    seq = np.arange(n, dtype=np.int64) - first[actor]
    new_session = new_actor.copy()
    new_session[1:] |= np.diff(ts) > gap_s * _TS_UNITS[keys.schema.field("ts").type.unit]
    sessions = np.cumsum(new_session)
    return seq, sessions - sessions[first[actor]] + 1
