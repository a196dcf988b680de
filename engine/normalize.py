"""Clean staged events into the `events` table: dedup, identity, bots, late arrivals, sessions, order.

Runs after `engine.ingest.load` (which left `staged_events`, every row with
its quarantine reason or none; normalisation consumes and drops it) and
before `engine.states.derive`. Each usable
row ends in exactly one bucket, in this order of precedence:

1. **duplicate**: the same (tenant, event_id) seen earlier (by time, then
   input order) no more than `dedupe_window` before. A missing event_id is
   generated from a hash of the event's content, so exact duplicate rows
   collapse. A repeat outside the window is a new event; its id gets a
   ``#n`` suffix so ids stay unique.
2. **bot**: the user agent matches a bot pattern (regular expressions,
   case-insensitive), or the actor exceeds `max_events_per_minute` within
   some sliding 60-second window ``[t, t + 60 s)`` (not calendar minutes,
   so a burst straddling a minute boundary is caught), in which case all of
   that actor's events go (a scripted client is not a person at any other
   minute either). Vectorised as ``ts - lag(ts, limit) < 60 s`` per actor,
   run only for actors with more than `limit` events in total.
3. **late**: received more than `late_arrival_tolerance` after it happened,
   or new since the previous run (its (tenant, event_id) is not in the
   previous `events` table) and timed before that run's sealed watermark
   minus the tolerance: its period's snapshot is already immutable. Events
   the previous run accepted are not late when read again, so re-running on
   the same (or a grown) source is idempotent.
4. **accepted**: everything else.

Identity resolution happens before the bot rule (the rate is per person):
events named in `alias_events` that carry both anonymous_id and user_id link
the two; connected components over those links (scipy's csgraph on
integer-coded ids, within a tenant) give one canonical actor per person: the
smallest user_id of the component (a known user beats an anonymous id).

Accepted events get `state_raw` (their name: the raw level), sessions (a new one after `inactivity_gap` of silence,
``session_id = '<actor>#<n>'``, n from 1) and `seq`, their 0-based order
within (tenant, actor) by (ts, input_order, event_id): equal timestamps keep
input order. `tenant_id` is part of every key, so one user id in two tenants
is two actors. The summary's identity ``events_read = accepted + quarantined
+ duplicates + bots_filtered + late_rejected`` is checked before returning.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine.actor_batches import new_actor_flags, whole_actor_tables
from engine.arrow_scan import in_batches
from engine.config import Config
from engine.dbsettings import engine_settings
from ontology.errors import ConfigError, EngineError

log = logging.getLogger(__name__)

_FLAGGED = "_jg_flagged"
EVENTS_DDL = """CREATE OR REPLACE TABLE events (
    tenant_id VARCHAR NOT NULL, actor_id VARCHAR NOT NULL, event_id VARCHAR NOT NULL, event_name VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, received_at TIMESTAMP, session_id VARCHAR, platform VARCHAR, user_agent VARCHAR,
    properties JSON, input_order BIGINT, seq BIGINT,
    state_raw VARCHAR, state_semantic VARCHAR, state_lifecycle VARCHAR)"""
_IDENTITY = "_jg_identity"
CHUNK_EVENTS = 2_000_000  # accepted events sequenced in one numpy pass: bounds memory on big inputs
_BATCH_ROWS = 500_000
_TS_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}  # ticks per second of an Arrow timestamp


@dataclass(frozen=True)
class NormalizeSummary:
    """Counts of one normalisation; the bucket counts always add up to events_read."""

    events_read: int
    accepted: int
    quarantined: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    bots_filtered: int = 0
    late_rejected: int = 0
    actors: int = 0
    identities_merged: int = 0
    data_start: datetime | None = None
    data_end: datetime | None = None

    @property
    def watermark(self) -> datetime | None:
        """What this run seals: the latest accepted event time (store it in `runs.watermark`)."""
        return self.data_end

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("data_start", "data_end"):
            data[key] = None if data[key] is None else data[key].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return data


def normalize(con: duckdb.DuckDBPyConnection, cfg: Config, watermark: datetime | None = None) -> NormalizeSummary:
    """Build `events` (replacing it) from `staged_events`; return the counts per bucket."""
    norm = cfg.normalize
    staged = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'staged_events'").fetchall()[0]
    if not staged or not staged[0]:
        raise ValueError("no staged_events on this connection: call engine.ingest.load(con, …) first, on the same connection")
    with engine_settings(con):
        _dedupe(con, norm.dedupe_window_s)
        merged = _resolve_identities(con, norm.alias_events)
        _flag_bots_and_late(con, cfg, watermark)
        accepted = _write_events(con, cfg.inactivity_gap_s)
        _write_rejected(con)
        summary = _summary(con, merged, accepted)
    con.execute("DROP VIEW IF EXISTS _jg_deduped")
    for table in (_FLAGGED, _IDENTITY, "staged_events"):  # the staging table is consumed: free its memory
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return summary


def _content_hash_sql() -> str:
    """A generated event_id: same content (tenant, actor ids, name, time, properties) -> same id."""
    parts = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in (
        "tenant_id", "user_id", "anonymous_id", "event_name", "strftime(ts, '%Y-%m-%dT%H:%M:%S.%f')",
        "source_session_id", "platform", "user_agent", "properties"))
    return f"'h:' || md5(concat_ws(chr(31), {parts}))"


def usable_rows_sql() -> str:
    """The staged rows that passed ingest, a missing event_id generated from their content (also engine.spark's bronze)."""
    return f"""SELECT * EXCLUDE (event_id, raw), coalesce(event_id, {_content_hash_sql()}) AS event_id
          FROM staged_events WHERE reason IS NULL"""


def _dedupe(con: duckdb.DuckDBPyConnection, window_s: int) -> None:
    """Usable rows with a duplicate flag; a repeat beyond the window is a new event with a suffixed id.

    Only keys seen more than once are ranked: a GROUP BY on the two key columns finds them, and the
    ordered window (which would carry and sort every row) runs on their rows alone.
    """
    window = f"INTERVAL ({int(window_s)}) SECOND"
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _jg_deduped AS
        WITH ids AS NOT MATERIALIZED ({usable_rows_sql()}),
        repeated AS (SELECT tenant_id, event_id FROM ids GROUP BY ALL HAVING count(*) > 1),
        ranked AS (
          SELECT *, row_number() OVER w AS occurrence, first_value(ts) OVER w AS first_ts
          FROM ids SEMI JOIN repeated USING (tenant_id, event_id)
          WINDOW w AS (PARTITION BY tenant_id, event_id ORDER BY ts, input_order))
        SELECT * EXCLUDE (occurrence, first_ts, event_id),
               occurrence > 1 AND ts - first_ts <= {window} AS duplicate,
               CASE WHEN occurrence > 1 AND ts - first_ts > {window}
                    THEN event_id || '#' || occurrence ELSE event_id END AS event_id
        FROM ranked
        UNION ALL BY NAME
        SELECT * EXCLUDE (event_id), false AS duplicate, event_id FROM ids ANTI JOIN repeated USING (tenant_id, event_id)""")


def _resolve_identities(con: duckdb.DuckDBPyConnection, alias_events: tuple[str, ...]) -> int:
    """Map every user/anonymous id that appears in an alias link to its component's canonical id.

    Ids are integer-coded in SQL, scipy labels the components of the link graph, and SQL picks each
    component's canonical id (users first, then the smallest): no Python loop over ids or events.
    """
    identity_table(con)
    if not alias_events or not _has_links(con, alias_events):
        return 0
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _jg_links AS
        SELECT DISTINCT tenant_id, user_id, anonymous_id FROM _jg_deduped
        WHERE NOT duplicate AND user_id IS NOT NULL AND anonymous_id IS NOT NULL AND list_contains(?, event_name)""",
        [list(alias_events)])
    return label_links(con)


def identity_table(con: duckdb.DuckDBPyConnection) -> str:
    """Create the (empty) id -> canonical actor table and return its name."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_IDENTITY} (tenant_id VARCHAR, kind VARCHAR, id VARCHAR, canonical VARCHAR)")
    return _IDENTITY


def label_links(con: duckdb.DuckDBPyConnection) -> int:
    """Fill the identity table from the distinct links in `_jg_links` (tenant_id, user_id, anonymous_id); ids merged."""
    con.execute("""
        CREATE OR REPLACE TEMP TABLE _jg_nodes AS
        SELECT *, CAST(row_number() OVER (ORDER BY tenant_id, kind, id) - 1 AS BIGINT) AS code FROM (
          SELECT tenant_id, 'u' AS kind, user_id AS id FROM _jg_links
          UNION SELECT tenant_id, 'a' AS kind, anonymous_id AS id FROM _jg_links)""")
    edges = con.sql("""
        SELECT u.code AS u, a.code AS a FROM _jg_links l
        JOIN _jg_nodes u ON u.kind = 'u' AND u.tenant_id = l.tenant_id AND u.id = l.user_id
        JOIN _jg_nodes a ON a.kind = 'a' AND a.tenant_id = l.tenant_id AND a.id = l.anonymous_id""").fetchnumpy()
    n_nodes = len(edges["u"]) and con.execute("SELECT count(*) FROM _jg_nodes").fetchall()[0][0]
    merged = 0
    if n_nodes:
        labels, n_components = _components(np.asarray(edges["u"]), np.asarray(edges["a"]), n_nodes)
        merged = n_nodes - n_components
        con.register("_jg_labels", pa.table({"code": np.arange(n_nodes, dtype=np.int64), "label": labels}))
        con.execute(f"""
            INSERT INTO {_IDENTITY}
            WITH labelled AS (SELECT n.*, l.label FROM _jg_nodes n JOIN _jg_labels l USING (code)),
            canon AS (SELECT label, arg_min(id, CASE WHEN kind = 'u' THEN '0' ELSE '1' END || id) AS canonical
                      FROM labelled GROUP BY label)
            SELECT tenant_id, kind, id, canonical FROM labelled JOIN canon USING (label)""")
        con.unregister("_jg_labels")
    con.execute("DROP TABLE IF EXISTS _jg_links")
    con.execute("DROP TABLE IF EXISTS _jg_nodes")
    return merged


def _has_links(con: duckdb.DuckDBPyConnection, alias_events: tuple[str, ...]) -> bool:
    """Whether any usable staged row could link two ids (cheap: staged rows, no dedupe needed)."""
    return bool(con.execute("""
        SELECT count(*) FROM (SELECT 1 FROM staged_events
          WHERE reason IS NULL AND user_id IS NOT NULL AND anonymous_id IS NOT NULL AND list_contains(?, event_name) LIMIT 1)""",
        [list(alias_events)]).fetchall()[0][0])


def _components(users: np.ndarray, anons: np.ndarray, n_nodes: int) -> tuple[np.ndarray, int]:
    """Connected-component label per node of the undirected user<->anonymous link graph."""
    from scipy.sparse import coo_matrix  # only inputs with alias links pay its import
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(users)), (users, anons)), shape=(n_nodes, n_nodes))
    n_components, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64), int(n_components)


def _bot_pattern(patterns: tuple[str, ...]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError(f"normalize.bots.user_agent_patterns: {pattern!r} is not a regular expression ({exc})") from exc
    return "|".join(f"(?:{p})" for p in patterns) if patterns else None


def _known_events_sql(con: duckdb.DuckDBPyConnection, watermark: datetime | None) -> str:
    """Event keys the previous run already accepted: re-reading them is not a late arrival."""
    exists = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events' AND NOT temporary").fetchall()[0]
    if watermark is None or not exists or not exists[0]:
        return "SELECT CAST(NULL AS VARCHAR) AS tenant_id, CAST(NULL AS VARCHAR) AS event_id WHERE false"
    return "SELECT DISTINCT tenant_id, event_id FROM events"


def _flag_bots_and_late(con: duckdb.DuckDBPyConnection, cfg: Config, watermark: datetime | None) -> None:
    bots = cfg.normalize.bots
    pattern = _bot_pattern(bots.user_agent_patterns)
    ua_bot = "regexp_matches(coalesce(user_agent, ''), ?, 'i')" if pattern else "false"
    tolerance = int(cfg.normalize.late_arrival_tolerance_s)
    params: list[Any] = ([pattern] if pattern else []) + [watermark]
    known = _known_events_sql(con, watermark)
    limit = max(int(bots.max_events_per_minute), 0)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {_FLAGGED} AS
        WITH resolved AS (
          SELECT d.* EXCLUDE (user_id, anonymous_id),
                 CASE WHEN d.user_id IS NOT NULL THEN coalesce(u.canonical, d.user_id)
                      ELSE coalesce(a.canonical, d.anonymous_id) END AS actor_id
          FROM _jg_deduped d
          LEFT JOIN {_IDENTITY} u ON u.kind = 'u' AND u.tenant_id = d.tenant_id AND u.id = d.user_id
          LEFT JOIN {_IDENTITY} a ON a.kind = 'a' AND a.tenant_id = d.tenant_id AND a.id = d.anonymous_id),
        known AS ({known})
        SELECT r.input_order, r.tenant_id, r.actor_id, r.event_id, r.ts, r.duplicate,
               NOT r.duplicate AND {ua_bot} AS bot,
               NOT r.duplicate AND (r.received_at - r.ts > INTERVAL ({tolerance}) SECOND
                    OR (r.ts < CAST(? AS TIMESTAMP) - INTERVAL ({tolerance}) SECOND AND k.event_id IS NULL)) AS late_raw
        FROM resolved r
        LEFT JOIN known k ON k.tenant_id = r.tenant_id AND k.event_id = r.event_id""", params)
    _flag_rate_bots(con, limit)


def _flag_rate_bots(con: duckdb.DuckDBPyConnection, limit: int) -> None:
    """Mark every non-duplicate event of an actor with more than `limit` events in some [t, t + 60 s).

    limit + 1 events less than 60 s apart is exactly that; the ordered window runs only for actors with
    more than `limit` events in total, and the UPDATE touches only the bots' rows.
    """
    con.execute(f"""
        UPDATE {_FLAGGED} SET bot = true
        FROM (
          SELECT DISTINCT tenant_id, actor_id FROM (
            SELECT tenant_id, actor_id, ts - lag(ts, {limit}) OVER (PARTITION BY tenant_id, actor_id ORDER BY ts) AS span
            FROM {_FLAGGED} SEMI JOIN (
              SELECT tenant_id, actor_id FROM {_FLAGGED} WHERE NOT duplicate GROUP BY ALL HAVING count(*) > {limit}
            ) heavy USING (tenant_id, actor_id)
            WHERE NOT duplicate)
          WHERE span < INTERVAL 60 SECOND) bursts
        WHERE {_FLAGGED}.tenant_id = bursts.tenant_id AND {_FLAGGED}.actor_id = bursts.actor_id
          AND NOT {_FLAGGED}.duplicate AND NOT {_FLAGGED}.bot""")


@dataclass(frozen=True)
class _Accepted:
    """What the sorted pass over the accepted keys already knows (no second scan of `events` for the summary)."""

    events: int = 0
    actors: int = 0
    start: datetime | None = None
    end: datetime | None = None

    def add(self, keys: pa.Table, new_actor: np.ndarray) -> _Accepted:
        low, high = pc.min_max(keys.column("ts")).values()
        start, end = low.as_py(), high.as_py()
        return _Accepted(events=self.events + keys.num_rows, actors=self.actors + int(new_actor.sum()),
                         start=start if self.start is None else min(self.start, start),
                         end=end if self.end is None else max(self.end, end))


def _write_events(con: duckdb.DuckDBPyConnection, gap_s: int) -> _Accepted:
    """Accepted events with seq and session, in one narrow sort; the wide columns are joined on afterwards.

    Only the keys are sorted (tenant, actor, ts, input order, event id); numpy numbers the rows and the
    sessions along that order, and the table is written unordered (every reader orders by seq): sorting
    and writing the wide rows in order cost three times as much on 1 M events. The wide columns come
    straight from the staging table (the flags table holds keys and flags only, so the rows are not
    copied once more: at 10 M events that copy no longer fits the memory limit and spills).
    """
    reader = con.sql(f"""
        SELECT tenant_id, actor_id, ts, input_order, event_id FROM {_FLAGGED}
        WHERE NOT duplicate AND NOT bot AND NOT coalesce(late_raw, false)
        ORDER BY tenant_id, actor_id, ts, input_order, event_id""").to_arrow_reader(_BATCH_ROWS)
    parts, accepted = [], _Accepted()
    for keys in whole_actor_tables(reader, CHUNK_EVENTS):  # whole actors at a time: memory stays bounded
        new_actor = new_actor_flags(keys)
        seq, session = _sequence(keys, new_actor, gap_s)
        accepted = accepted.add(keys, new_actor)
        parts.append(keys.select(["input_order", "actor_id", "event_id"])
                     .append_column("seq", pa.array(seq)).append_column("session_no", pa.array(session)))
    con.register("_jg_keys", in_batches(pa.concat_tables(parts) if parts else _empty_keys()))
    con.execute(EVENTS_DDL)
    try:
        con.execute("""
            INSERT INTO events
            SELECT s.tenant_id, k.actor_id, k.event_id, s.event_name, s.ts, s.received_at,
                   k.actor_id || '#' || k.session_no AS session_id, s.platform, s.user_agent, s.properties,
                   k.input_order, k.seq, s.event_name AS state_raw, CAST(NULL AS VARCHAR), CAST(NULL AS VARCHAR)
            FROM staged_events s JOIN _jg_keys k USING (input_order)""")
    finally:
        con.unregister("_jg_keys")
    return accepted


def _empty_keys() -> pa.Table:
    return pa.table({"input_order": pa.array([], pa.int64()), "actor_id": pa.array([], pa.string()),
                     "event_id": pa.array([], pa.string()), "seq": pa.array([], pa.int64()),
                     "session_no": pa.array([], pa.int64())})


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


def _write_rejected(con: duckdb.DuckDBPyConnection, flagged: str = _FLAGGED) -> None:
    """Usable rows that were still not accepted, with why: the audit trail beside `quarantine`."""
    con.execute(f"""
        CREATE OR REPLACE TABLE rejected_events AS
        SELECT s.run_id, s.source, s.line, f.tenant_id, f.actor_id, f.event_id,
               CASE WHEN f.duplicate THEN 'duplicate' WHEN f.bot THEN 'bot' ELSE 'late_arrival' END AS reason
        FROM {flagged} f JOIN staged_events s USING (input_order)
        WHERE f.duplicate OR f.bot OR coalesce(f.late_raw, false)
        ORDER BY f.input_order""")


def _summary(con: duckdb.DuckDBPyConnection, merged: int, acc: _Accepted, flagged: str = _FLAGGED) -> NormalizeSummary:
    read, quarantined = con.execute("SELECT count(*), count(reason) FROM staged_events").fetchall()[0]
    by_reason = dict(con.execute(
        "SELECT reason, count(*) FROM staged_events WHERE reason IS NOT NULL GROUP BY ALL ORDER BY ALL").fetchall())
    dups, bots, late = con.execute(
        f"""SELECT count(*) FILTER (WHERE duplicate), count(*) FILTER (WHERE NOT duplicate AND bot),
                   count(*) FILTER (WHERE NOT duplicate AND NOT bot AND coalesce(late_raw, false)) FROM {flagged}""").fetchall()[0]
    summary = NormalizeSummary(events_read=read, accepted=acc.events, quarantined=quarantined,
                               quarantined_by_reason=by_reason, duplicates=dups, bots_filtered=bots,
                               late_rejected=late, actors=acc.actors, identities_merged=merged,
                               data_start=acc.start, data_end=acc.end)
    accepted = con.execute("SELECT count(*) FROM events").fetchall()[0][0]  # what was stored, not what was meant to be
    if accepted != acc.events:
        raise EngineError(f"events holds {accepted} rows but {acc.events} were sequenced; this is a bug, please report it")
    total = accepted + quarantined + dups + bots + late
    if total != read:
        raise EngineError(f"normalisation lost rows: events_read {read} != accepted {accepted} + quarantined {quarantined} "
                          f"+ duplicates {dups} + bots {bots} + late {late}; this is a bug, please report it")
    return summary
