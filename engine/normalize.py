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
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from engine import incremental, sequencing, silver
from engine.config import Config
from engine.dbsettings import engine_settings
from engine.ingest import SOURCES
from engine.sequencing import EVENTS_DDL  # noqa: F401 - the events table's contract, named here in the docs
from ontology.errors import ConfigError, EngineError

log = logging.getLogger(__name__)

_FLAGGED = "_jg_flagged"
CollectLinks = Callable[[duckdb.DuckDBPyConnection, tuple[str, ...]], None]

_IDENTITY = "_jg_identity"
_REPEATED = "_jg_repeated"  # hashes of the (tenant, event id) keys seen more than once
_KEY_HASH = "hash(tenant_id, event_id)"


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
    """Build `events` (replacing it) from `staged_events`; return the counts per bucket.

    In an incremental run (`engine.incremental`) only the new files are staged and the stored events are
    the context; when they would change a stored event's fate every file is read and normalised again.
    """
    staged = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'staged_events'").fetchall()[0]
    if not staged or not staged[0]:
        raise ValueError("no staged_events on this connection: call engine.ingest.load(con, …) first, on the same connection")
    run = incremental.current(con)
    try:
        summary = _normalize(con, cfg, watermark, run if run is not None and run.incremental else None)
    except incremental.FullRecompute as exc:
        assert run is not None
        log.info("incremental run not possible (%s): normalising every file again", exc)
        run.fall_back(str(exc))
        _drop_work(con)
        from engine import ingest

        ingest.load(con, run.source, cfg, run.run_id)
        summary = _normalize(con, cfg, watermark, None)
    _drop_work(con)
    return summary


def _normalize(con: duckdb.DuckDBPyConnection, cfg: Config, watermark: datetime | None,
               run: incremental.Plan | None) -> NormalizeSummary:
    norm = cfg.normalize
    with engine_settings(con):
        _dedupe(con, norm.dedupe_window_s)
        merged = resolve_identities(con, norm.alias_events, run)
        _flag_bots_and_late(con, cfg, watermark, run)
        accepted = sequencing.write_events(con, _FLAGGED, cfg.inactivity_gap_s, run)
        _write_rejected(con, run)
        summary = _summary(con, merged, accepted, run)
    return summary if run is None else incremental.cumulative(con, summary)


def _drop_work(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP VIEW IF EXISTS _jg_deduped")
    for table in (_FLAGGED, _IDENTITY, _REPEATED, "staged_events", SOURCES, "_jg_links", "_jg_bursts"):  # consumed: free the memory
        con.execute(f"DROP TABLE IF EXISTS {table}")


def _content_hash_sql() -> str:
    """A generated event_id: same content (tenant, actor ids, name, time, properties) -> same id."""
    parts = ", ".join(f"coalesce(CAST({c} AS VARCHAR), '')" for c in (
        "tenant_id", "user_id", "anonymous_id", "event_name", "strftime(ts, '%Y-%m-%dT%H:%M:%S.%f')",
        "source_session_id", "platform", "user_agent", "properties"))
    return f"'h:' || md5(concat_ws(chr(31), {parts}))"


def usable_rows_sql(staged_row: bool = False) -> str:
    """The staged rows that passed ingest, a missing event_id generated from their content (also engine.spark's bronze).

    `staged_row`: with the row's rowid in `staged_events` and whether its id is made here (`made_id`): engine.sequencing
    joins its numbers to the staged rows by position and carries only the ids that differ from the staged ones.
    """
    row = "rowid AS staged_row, event_id IS NULL AS made_id, " if staged_row else ""
    return f"""SELECT {row}* EXCLUDE (event_id, raw), coalesce(event_id, {_content_hash_sql()}) AS event_id
          FROM staged_events WHERE reason IS NULL"""


def _dedupe(con: duckdb.DuckDBPyConnection, window_s: int) -> None:
    """Usable rows with a duplicate flag; a repeat beyond the window is a new event with a suffixed id.

    Only keys seen more than once are ranked (`_repeated_keys` finds them), and the ordered window
    (which would carry and sort every row) runs on their rows alone.
    """
    window = f"INTERVAL ({int(window_s)}) SECOND"
    _repeated_keys(con)
    con.execute(f"""
        CREATE OR REPLACE TEMP VIEW _jg_deduped AS
        WITH ids AS NOT MATERIALIZED (SELECT *, {_KEY_HASH} AS _jg_key FROM ({usable_rows_sql(staged_row=True)})),
        ranked AS (
          SELECT * EXCLUDE (_jg_key), row_number() OVER w AS occurrence, first_value(ts) OVER w AS first_ts
          FROM ids SEMI JOIN {_REPEATED} USING (_jg_key)
          WINDOW w AS (PARTITION BY tenant_id, event_id ORDER BY ts, input_order))
        SELECT * EXCLUDE (occurrence, first_ts, event_id, made_id),
               occurrence > 1 AND ts - first_ts <= {window} AS duplicate,
               CASE WHEN occurrence > 1 AND ts - first_ts > {window}
                    THEN event_id || '#' || occurrence ELSE event_id END AS event_id,
               made_id OR (occurrence > 1 AND ts - first_ts > {window}) AS made_id
        FROM ranked
        UNION ALL BY NAME
        SELECT * EXCLUDE (event_id, _jg_key), false AS duplicate, event_id FROM ids ANTI JOIN {_REPEATED} USING (_jg_key)""")


def _repeated_keys(con: duckdb.DuckDBPyConnection) -> None:
    """`_REPEATED`: the 64-bit hashes of (tenant_id, event_id) that more than one usable row has.

    numpy sorts the hashes (80 MB at 10 M events): a GROUP BY over every key (10 M string groups) was
    about half of the flags statement's time. A hash shared by two different keys only sends both to
    the window in `_dedupe`, where each is ranked first in its own partition: the same result.
    """
    keys = con.sql(f"SELECT {_KEY_HASH} AS k FROM ({usable_rows_sql()})").fetchnumpy()["k"]
    ordered = np.sort(np.asarray(keys, dtype=np.uint64))
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    con.register("_jg_repeated_arrow", pa.table({"_jg_key": pa.array(repeated, pa.uint64())}))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_REPEATED} AS SELECT _jg_key FROM _jg_repeated_arrow")
    finally:
        con.unregister("_jg_repeated_arrow")


def resolve_identities(con: duckdb.DuckDBPyConnection, alias_events: tuple[str, ...],
                       run: incremental.Plan | None = None, collect_links: CollectLinks | None = None) -> int:
    """Map every user/anonymous id that appears in an alias link to its component's canonical id.

    Ids are integer-coded in SQL, scipy labels the components of the link graph, and SQL picks each
    component's canonical id (users first, then the smallest): no Python loop over ids or events.
    A workspace keeps the links and the mapping, so an incremental run resolves new events with them.
    `collect_links` fills `_jg_links` with the distinct links (default: from `_jg_deduped`; engine.spark
    collects them on Spark); the id -> canonical map is left in the `_jg_identity` table.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_IDENTITY} (tenant_id VARCHAR, kind VARCHAR, id VARCHAR, canonical VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE _jg_links (tenant_id VARCHAR, user_id VARCHAR, anonymous_id VARCHAR)")
    merged = 0
    if alias_events and _has_links(con, alias_events):
        (collect_links or _collect_links)(con, alias_events)
        merged = _link_components(con, run)
    if silver.root_of(con) is not None:
        _keep_identities(con, run)
    return merged


def _collect_links(con: duckdb.DuckDBPyConnection, alias_events: tuple[str, ...]) -> None:
    con.execute("""
        INSERT INTO _jg_links
        SELECT DISTINCT tenant_id, user_id, anonymous_id FROM _jg_deduped
        WHERE NOT duplicate AND user_id IS NOT NULL AND anonymous_id IS NOT NULL AND list_contains(?, event_name)""",
        [list(alias_events)])


def _link_components(con: duckdb.DuckDBPyConnection, run: incremental.Plan | None) -> int:
    if run is not None:
        incremental.identity_links_clash(con)
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
    con.execute("DROP TABLE IF EXISTS _jg_nodes")
    return merged


def _keep_identities(con: duckdb.DuckDBPyConnection, run: incremental.Plan | None) -> None:
    """Store the links and the id mapping (a full run replaces them, an incremental one adds its new links)."""
    if run is None:
        con.execute("CREATE OR REPLACE TABLE identity_links AS SELECT * FROM _jg_links")
        con.execute(f"CREATE OR REPLACE TABLE identity_map AS SELECT * FROM {_IDENTITY}")
        return
    con.execute("INSERT INTO identity_links SELECT * FROM _jg_links")
    con.execute(f"INSERT INTO identity_map SELECT * FROM {_IDENTITY}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_IDENTITY} AS SELECT * FROM identity_map")


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
    """Event keys the previous run already accepted (the stored table, or the silver view): re-reading them is not late."""
    exists = con.execute("""SELECT (SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events' AND NOT temporary)
                                 + (SELECT count(*) FROM duckdb_views() WHERE view_name = 'events')""").fetchall()[0]
    if watermark is None or not exists or not exists[0]:
        return "SELECT CAST(NULL AS VARCHAR) AS tenant_id, CAST(NULL AS VARCHAR) AS event_id WHERE false"
    return "SELECT DISTINCT tenant_id, event_id FROM events"


def _flag_bots_and_late(con: duckdb.DuckDBPyConnection, cfg: Config, watermark: datetime | None,
                        run: incremental.Plan | None = None) -> None:
    bots = cfg.normalize.bots
    pattern = _bot_pattern(bots.user_agent_patterns)
    ua_bot = "regexp_matches(coalesce(user_agent, ''), ?, 'i')" if pattern else "false"
    tolerance = int(cfg.normalize.late_arrival_tolerance_s)
    params: list[Any] = ([pattern] if pattern else []) + [watermark]
    # incremental: a new event with a stored id is a duplicate (or the run falls back), so none is "known"
    known = _known_events_sql(con, None if run is not None else watermark)
    limit = max(int(bots.max_events_per_minute), 0)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {_FLAGGED} AS
        WITH resolved AS (
          SELECT d.* EXCLUDE (user_id, anonymous_id),
                 CASE WHEN d.user_id IS NOT NULL THEN u.canonical ELSE a.canonical END AS mapped_to,
                 coalesce(mapped_to, d.user_id, d.anonymous_id) AS actor_id
          FROM _jg_deduped d
          LEFT JOIN {_IDENTITY} u ON u.kind = 'u' AND u.tenant_id = d.tenant_id AND u.id = d.user_id
          LEFT JOIN {_IDENTITY} a ON a.kind = 'a' AND a.tenant_id = d.tenant_id AND a.id = d.anonymous_id),
        hashed AS (SELECT *, {sequencing.actor_hash_sql()} AS {sequencing.ACTOR_HASH} FROM resolved),  -- once, not per pass
        known AS ({known})
        SELECT r.input_order, r.staged_row, r.tenant_id, r.actor_id, r.{sequencing.ACTOR_HASH}, r.event_id, r.ts, r.duplicate,
               r.made_id, r.mapped_to IS NOT NULL AS mapped,  -- ids that differ from the staged row's
               NOT r.duplicate AND {ua_bot} AS bot,
               NOT r.duplicate AND (r.received_at - r.ts > INTERVAL ({tolerance}) SECOND
                    OR (r.ts < CAST(? AS TIMESTAMP) - INTERVAL ({tolerance}) SECOND AND k.event_id IS NULL)) AS late_raw
        FROM hashed r
        LEFT JOIN known k ON k.tenant_id = r.tenant_id AND k.event_id = r.event_id""", params)
    if run is not None:  # the stored events as context: repeats of stored ids, and bursts across the two
        incremental.stored_duplicates(con, _FLAGGED, f"coalesce(event_id, {_content_hash_sql()})", cfg.normalize.dedupe_window_s)
        incremental.rate_context(con, _FLAGGED)
        con.execute(f"UPDATE {_FLAGGED} SET {sequencing.ACTOR_HASH} = {sequencing.actor_hash_sql()} "
                    f"WHERE {sequencing.ACTOR_HASH} IS NULL")  # the context rows: the rate rule groups by the hash
    _flag_rate_bots(con, limit)
    if run is not None:
        incremental.check_rate_context(con, _FLAGGED)
    keep_bot_actors(con, run)


def keep_bot_actors(con: duckdb.DuckDBPyConnection, run: incremental.Plan | None = None) -> None:
    """A workspace keeps the rate bots (`_jg_bursts`): an incremental run flags their new events too."""
    if silver.root_of(con) is not None:
        con.execute(("INSERT INTO bot_actors" if run is not None else "CREATE OR REPLACE TABLE bot_actors AS")
                    + " SELECT * FROM _jg_bursts")


def _flag_rate_bots(con: duckdb.DuckDBPyConnection, limit: int) -> None:
    """Mark every non-duplicate event of an actor with more than `limit` events in some [t, t + 60 s).

    limit + 1 events less than 60 s apart is exactly that; the ordered window runs only for actors with
    more than `limit` events in total, and the UPDATE touches only the bots' rows. Those actors are found by
    their hash (an integer GROUP BY, not one of 10 M string pairs): actors sharing a hash only go to the
    window together, which still partitions by the actor itself.
    """
    hashed = sequencing.ACTOR_HASH
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_bursts AS
          SELECT DISTINCT tenant_id, actor_id FROM (
            SELECT tenant_id, actor_id, ts - lag(ts, {limit}) OVER (PARTITION BY tenant_id, actor_id ORDER BY ts) AS span
            FROM {_FLAGGED} SEMI JOIN (
              SELECT {hashed} FROM {_FLAGGED} WHERE NOT duplicate GROUP BY ALL HAVING count(*) > {limit}
            ) heavy USING ({hashed})
            WHERE NOT duplicate)
          WHERE span < INTERVAL 60 SECOND""")
    con.execute(f"""
        UPDATE {_FLAGGED} SET bot = true FROM _jg_bursts bursts
        WHERE {_FLAGGED}.tenant_id = bursts.tenant_id AND {_FLAGGED}.actor_id = bursts.actor_id
          AND NOT {_FLAGGED}.duplicate AND NOT {_FLAGGED}.bot""")


def _write_rejected(con: duckdb.DuckDBPyConnection, run: incremental.Plan | None = None, flagged: str = _FLAGGED) -> None:
    """Usable rows that were still not accepted, with why: the audit trail beside `quarantine` (an incremental run adds)."""
    head = "INSERT INTO rejected_events" if run is not None else "CREATE OR REPLACE TABLE rejected_events AS"
    con.execute(f"""
        {head}
        SELECT src.run_id, src.source, s.line, f.tenant_id, f.actor_id, f.event_id,
               CASE WHEN f.duplicate THEN 'duplicate' WHEN f.bot THEN 'bot' ELSE 'late_arrival' END AS reason, f.ts
        FROM {flagged} f JOIN staged_events s USING (input_order) JOIN {SOURCES} src USING (file_index)
        WHERE f.duplicate OR f.bot OR coalesce(f.late_raw, false)
        ORDER BY f.input_order""")


def _summary(con: duckdb.DuckDBPyConnection, merged: int, acc: sequencing.Accepted,
             run: incremental.Plan | None = None, flagged: str = _FLAGGED) -> NormalizeSummary:
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
    accepted = acc.inserted  # what was stored, not what was meant to be
    if accepted != acc.events:
        raise EngineError(f"events holds {accepted} rows but {acc.events} were sequenced; this is a bug, please report it")
    total = accepted + quarantined + dups + bots + late
    if total != read:
        raise EngineError(f"normalisation lost rows: events_read {read} != accepted {accepted} + quarantined {quarantined} "
                          f"+ duplicates {dups} + bots {bots} + late {late}; this is a bug, please report it")
    return summary
