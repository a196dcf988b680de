"""Incremental runs: read only the source files not seen before and normalise them against the stored silver.

`plan` (called by the pipeline at a run's start, after collecting garbage) decides between

* **incremental**: the workspace has silver from a previous run with the same
  normalisation settings (`settings_key`), every file read before is still there
  unchanged (path, size, and the SHA-256 of its bytes when its mtime moved), and
  every new file sorts after them, so each file keeps its index and every event
  its `input_order` (ties in time keep the order a full recompute gives);
* **full**: anything else (first run, a SQL source, changed settings, a changed
  or removed file, a new file sorting before an old one, a journey inferred
  from the data), with the reason in the run summary.

An incremental run stages only the new files (`engine.ingest` asks
`current(con)`); `engine.normalize` applies today's rules to them with the
stored events as context (`stored_duplicates`, `identity_links_clash`,
`rate_context`, the late rule over the `events` view) and re-sequences only the
actors with new events (`touched_keys_sql`). When the new data would change
the fate of a stored event (a re-sent id outside the dedupe window, an alias
link that merges actors with stored events, a burst that makes an actor with
stored events a bot) it raises `FullRecompute` and normalisation starts again
over every file: the result is always the one a full recompute gives. Only
partitions whose content changed are written; sealed days never change (a
new accepted event is never earlier than the previous watermark minus the
late-arrival tolerance, so neither are the seq and session of any event
before it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from engine import silver
from engine.config import Config

INPUTS = "parquet_inputs"
INPUTS_DDL = f"""CREATE TABLE IF NOT EXISTS {INPUTS}(file_index INTEGER, path VARCHAR, size BIGINT, mtime_ns BIGINT,
                                                   sha256 VARCHAR)"""
TOUCHED = "_jg_touched_actors"  # actors with new events in an incremental run
STATE_DDL = "CREATE TABLE IF NOT EXISTS parquet_state(key VARCHAR PRIMARY KEY, value VARCHAR)"
FULL_ENV = "JOURNEYGRAPH_FULL_RECOMPUTE"  # set to 1: every run reads and normalises every file
LAYOUT = "parquet-layers-1"  # bump when a stored table's shape changes: older workspaces then recompute fully
CONTEXT_S = 60  # the rate-bot rule looks 60 s back: stored events older than that cannot share a burst with new ones
_PLANS: weakref.WeakKeyDictionary[Any, Plan] = weakref.WeakKeyDictionary()


class FullRecompute(Exception):
    """The new input changes a stored event's fate: normalise every file again (the message says why)."""


@dataclass
class Plan:
    """What this run reads and reuses; `incremental` False means a full recompute (`reason` says why)."""

    source: str
    run_id: str
    incremental: bool
    reason: str
    files: list[str] = field(default_factory=list)
    new: dict[str, int] = field(default_factory=dict)  # path -> file index of the files read this run
    settings: str = ""
    watermark: datetime | None = None
    tolerance_s: int = 0
    partitions: dict[str, int] = field(default_factory=dict)

    def fall_back(self, reason: str) -> None:
        self.incremental, self.reason = False, reason
        self.new = dict((p, i) for i, p in enumerate(self.files))

    def sealed_before(self) -> datetime | None:
        """Days ending at or before this instant are sealed: the late rule rejects any new event in them."""
        return None if self.watermark is None else self.watermark - timedelta(seconds=self.tolerance_s)


def current(con: Any) -> Plan | None:
    try:
        return _PLANS.get(con)
    except TypeError:
        return None


def settings_key(cfg: Config, version: str) -> str:
    """What the stored silver depends on: normalisation, sessions, state rules and the engine version."""
    parts = [dataclasses.asdict(cfg.normalize), cfg.inactivity_gap_s,
             [dataclasses.asdict(s) for s in cfg.states], [dataclasses.asdict(s) for s in cfg.lifecycle], version, LAYOUT]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan(con: duckdb.DuckDBPyConnection, source: str, cfg: Config, run_id: str, watermark: datetime | None,
         version: str) -> Plan:
    """Decide how this run reads `source` (and collect the garbage of earlier runs first)."""
    silver.collect_garbage(con)
    con.execute(INPUTS_DDL)
    con.execute(STATE_DDL)
    key = settings_key(cfg, version)
    result = Plan(source, run_id, False, "", settings=key, watermark=watermark,
                  tolerance_s=int(cfg.normalize.late_arrival_tolerance_s))
    result.reason = _full_reason(con, source, cfg, key, watermark, result)
    result.incremental = not result.reason
    if not result.incremental:
        result.fall_back(result.reason)
    _PLANS[con] = result
    return result


def _full_reason(con: duckdb.DuckDBPyConnection, source: str, cfg: Config, key: str, watermark: datetime | None,
                 result: Plan) -> str:
    from engine import ingest, sql_sources

    if silver.root_of(con) is None:
        return "not a workspace"
    if sql_sources.is_sql(source.strip()) or "://" in source:
        return "a SQL source is read whole"
    result.files = ingest.expand(source)
    if os.environ.get(FULL_ENV, "") not in ("", "0"):
        return f"a full recompute was asked for ({FULL_ENV})"
    stored = con.execute(f"SELECT path, file_index, size, mtime_ns, sha256 FROM {INPUTS} ORDER BY file_index").fetchall()
    if watermark is None or not stored or not silver.files(con, "events"):
        return "first run of this workspace"
    if _state(con, "settings") != key:
        return "the normalisation settings, state rules or engine version changed"
    if not cfg.journeys or cfg.inferred:
        return "the journey is inferred from all of the data"
    index = {p: i for i, p in enumerate(result.files)}
    for path, file_index, size, mtime_ns, sha in stored:
        if index.get(path) != file_index:
            return f"{path} was removed, or a new file sorts before it"
        if _changed(path, size, mtime_ns, sha):
            return f"{path} changed since it was read"
    result.new = {p: i for i, p in enumerate(result.files) if i >= len(stored)}
    return ""


def _changed(path: str, size: int, mtime_ns: int, sha: str) -> bool:
    stat = os.stat(path)
    if stat.st_size != size:
        return True
    return stat.st_mtime_ns != mtime_ns and silver.file_sha256(path) != sha


def _state(con: duckdb.DuckDBPyConnection, key: str) -> str | None:
    rows = con.execute("SELECT value FROM parquet_state WHERE key = ?", [key]).fetchall()
    return rows[0][0] if rows else None


def commit(con: duckdb.DuckDBPyConnection) -> None:
    """Record the files read and the settings once the run's silver is written (a full run replaces the list)."""
    run = current(con)
    if run is None or not run.files:
        return
    rows = []
    for path, index in sorted(run.new.items(), key=lambda item: item[1]):
        stat = os.stat(path)
        rows.append((index, path, stat.st_size, stat.st_mtime_ns, silver.file_sha256(path)))
    if not run.incremental:
        con.execute(f"DELETE FROM {INPUTS}")
    if rows:
        con.executemany(f"INSERT INTO {INPUTS} VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("INSERT OR REPLACE INTO parquet_state VALUES ('settings', ?)", [run.settings])


# --- normalisation against the stored events ------------------------------------------------


def stored_duplicates(con: duckdb.DuckDBPyConnection, flagged: str, id_sql: str, window_s: int) -> int:
    """Mark new events that repeat a stored event within the dedupe window as duplicates.

    Exact when the stored event is the id's first occurrence (an accepted event with the plain id) and
    every new repeat is at or after it and within the window: a full recompute ranks the stored row first
    (earlier file, so earlier input order on equal times). Anything else changes a stored event's fate.
    """
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_clash AS
        WITH fresh AS (SELECT tenant_id, {id_sql} AS event_id, ts FROM staged_events WHERE reason IS NULL),
        seen AS MATERIALIZED (  -- one scan of the stored ids: those a new id repeats (a semi join built on the
          SELECT tenant_id, event_id, ts FROM events  -- small new ids) and every suffixed one
          WHERE event_id IN (SELECT event_id FROM fresh) OR (contains(event_id, '#') AND regexp_matches(event_id, '#[0-9]+$'))),
        stored AS (   -- a suffixed row also stands as itself: the join below keeps it only if a new id repeats it
          SELECT tenant_id, event_id, ts, true AS first FROM seen
          UNION ALL SELECT tenant_id, regexp_replace(event_id, '#[0-9]+$', ''), NULL, false FROM seen
            WHERE contains(event_id, '#') AND regexp_matches(event_id, '#[0-9]+$')
          UNION ALL SELECT tenant_id, regexp_replace(event_id, '#[0-9]+$', ''), NULL, false FROM rejected_events)
        SELECT f.tenant_id, f.event_id, min(f.ts) AS low, max(f.ts) AS high,
               min(s.ts) FILTER (WHERE s.first) AS first_ts, bool_or(NOT s.first) AS other
        FROM fresh f JOIN stored s USING (tenant_id, event_id) GROUP BY ALL""")
    bad = con.execute(f"""SELECT count(*) FROM _jg_clash WHERE other OR first_ts IS NULL OR low < first_ts
                          OR high - first_ts > INTERVAL ({int(window_s)}) SECOND""").fetchall()[0][0]
    if bad:
        raise FullRecompute(f"{bad} new event ids repeat stored events outside the dedupe window")
    n = con.execute(f"""UPDATE {flagged} SET duplicate = true, bot = false, late_raw = false
                        FROM _jg_clash c WHERE {flagged}.tenant_id = c.tenant_id AND {flagged}.event_id = c.event_id
                          AND NOT {flagged}.duplicate""").fetchall()[0][0]
    con.execute("DROP TABLE _jg_clash")
    return int(n)


def identity_links_clash(con: duckdb.DuckDBPyConnection) -> None:
    """New alias links may only join ids never seen before; otherwise stored events would change actor."""
    bad = con.execute("""
        WITH fresh AS (SELECT * FROM _jg_links EXCEPT SELECT * FROM identity_links),
        ids AS (SELECT tenant_id, user_id AS id FROM fresh UNION SELECT tenant_id, anonymous_id FROM fresh),
        known AS (SELECT tenant_id, user_id AS id FROM identity_links UNION SELECT tenant_id, anonymous_id FROM identity_links
                  UNION SELECT DISTINCT tenant_id, actor_id FROM events)
        SELECT count(*) FROM ids SEMI JOIN known USING (tenant_id, id)""").fetchall()[0][0]
    if bad:
        raise FullRecompute(f"new alias links merge {bad} ids that already have stored events or links")
    con.execute("DELETE FROM _jg_links WHERE (tenant_id, user_id, anonymous_id) IN (SELECT * FROM identity_links)")


def rate_context(con: duckdb.DuckDBPyConnection, flagged: str) -> None:
    """Add the stored events of actors with new events, from 60 s before the first new one, as context rows.

    Context rows have a negative input_order; `check_rate_context` removes them after the rate rule.
    Stored bots stay bots: their new events are flagged too (the rule drops all of a bot's events).
    """
    first = con.execute(f"SELECT min(ts) FROM {flagged} WHERE NOT duplicate").fetchall()[0][0]
    if first is None:
        return
    since = first - timedelta(seconds=CONTEXT_S)  # a literal bound: DuckDB skips the older files and row groups
    con.execute(f"""
        INSERT INTO {flagged} (input_order, tenant_id, actor_id, event_id, ts, duplicate, bot, late_raw)
        WITH actors AS (SELECT tenant_id, actor_id, min(ts) - INTERVAL ({CONTEXT_S}) SECOND AS since
                        FROM {flagged} WHERE NOT duplicate GROUP BY ALL)
        SELECT -1 - row_number() OVER (), e.tenant_id, e.actor_id, e.event_id, e.ts, false, false, false
        FROM events e JOIN actors a ON a.tenant_id = e.tenant_id AND a.actor_id = e.actor_id
        WHERE e.ts >= TIMESTAMP '{since:%Y-%m-%d %H:%M:%S.%f}' AND e.ts >= a.since""")
    con.execute(f"""UPDATE {flagged} SET bot = true FROM bot_actors b
                    WHERE {flagged}.tenant_id = b.tenant_id AND {flagged}.actor_id = b.actor_id AND NOT {flagged}.duplicate""")


def check_rate_context(con: duckdb.DuckDBPyConnection, flagged: str) -> None:
    bad = con.execute(f"SELECT count(DISTINCT (tenant_id, actor_id)) FROM {flagged} WHERE input_order < 0 AND bot").fetchall()[0][0]
    if bad:
        raise FullRecompute(f"new events make {bad} actors with stored events bots")
    con.execute(f"DELETE FROM {flagged} WHERE input_order < 0")


def touched_keys_sql(accepted_keys: str) -> str:
    """The keys to sequence: the new accepted events and every stored event of their actors (a `stored` flag)."""
    return f"""
        SELECT *, false AS stored FROM ({accepted_keys})
        UNION ALL BY NAME
        SELECT e.tenant_id, e.actor_id, e.ts, e.input_order, e.event_id, true AS stored
        FROM events e SEMI JOIN (SELECT DISTINCT tenant_id, actor_id FROM ({accepted_keys})) a USING (tenant_id, actor_id)"""


# --- journeys -----------------------------------------------------------------------------------


def journeys_key(cfg: Config) -> str:
    parts = [[dataclasses.asdict(j) for j in cfg.journeys], [dataclasses.asdict(s) for s in cfg.segments], LAYOUT]
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def journeys_reusable(con: duckdb.DuckDBPyConnection, cfg: Config) -> bool:
    """Whether the stored journey cuts and steps of actors without new events can be kept (same journey config)."""
    run = current(con)
    if run is None or not run.incremental or not silver.is_table(con, TOUCHED) or not silver.is_table(con, "journey_cuts"):
        return False
    return _state(con, "journeys") == journeys_key(cfg)


def sealing_bound(con: duckdb.DuckDBPyConnection, cfg: Config) -> datetime | None:
    """This run's watermark minus the late-arrival tolerance: no later run accepts an event before it."""
    if current(con) is None or silver.root_of(con) is None:
        return None
    watermark = con.execute(f"SELECT max(ts) FROM events {silver.recent_events(con)}").fetchall()[0][0]
    return None if watermark is None else watermark - timedelta(seconds=int(cfg.normalize.late_arrival_tolerance_s))


def begin_journeys(con: duckdb.DuckDBPyConnection) -> None:
    if current(con) is not None:
        con.execute("DELETE FROM parquet_state WHERE key = 'journeys'")


def finish_journeys(con: duckdb.DuckDBPyConnection, cfg: Config, only_touched: bool) -> None:
    """Record what was cut again and what was kept, and the journey config the stored cuts follow."""
    run = current(con)
    if run is not None and silver.is_table(con, "journey_cuts"):
        total = con.execute("SELECT count(*) FROM journey_cuts").fetchall()[0][0]
        recut = total if not only_touched else con.execute(
            f"SELECT count(*) FROM journey_cuts SEMI JOIN {TOUCHED} USING (tenant_id, actor_id) WHERE NOT sealed").fetchall()[0][0]
        run.partitions.update(journeys_recut=int(recut), journeys_reused=int(total - recut))
        con.execute("INSERT OR REPLACE INTO parquet_state VALUES ('journeys', ?)", [journeys_key(cfg)])
    con.execute(f"DROP TABLE IF EXISTS {TOUCHED}")


# --- the run summary -------------------------------------------------------------------------


def cumulative(con: duckdb.DuckDBPyConnection, delta: Any) -> Any:
    """This run's normalisation counts added to the previous run's, so the summary describes all the data."""
    run = current(con)
    if run is not None:
        run.partitions["events_read_this_run"] = delta.events_read
    rows = con.execute("SELECT summary FROM runs ORDER BY rowid DESC LIMIT 1").fetchall()
    if not rows:
        return delta
    prev = json.loads(rows[0][0]) if isinstance(rows[0][0], str) else dict(rows[0][0])
    quarantined = prev["quarantined"] if isinstance(prev["quarantined"], dict) else {"total": prev["quarantined"], "by_reason": {}}
    by_reason = dict(quarantined.get("by_reason", {}))
    for reason, n in delta.quarantined_by_reason.items():
        by_reason[reason] = by_reason.get(reason, 0) + n
    return dataclasses.replace(
        delta, events_read=prev["events_read"] + delta.events_read, accepted=prev["accepted"] + delta.accepted,
        quarantined=quarantined["total"] + delta.quarantined, quarantined_by_reason=dict(sorted(by_reason.items())),
        duplicates=prev["duplicates"] + delta.duplicates, bots_filtered=prev["bots_filtered"] + delta.bots_filtered,
        late_rejected=prev["late_rejected"] + delta.late_rejected, actors=prev["actors"] + delta.actors)


def up_to_date(con: duckdb.DuckDBPyConnection, run: Plan, cfg: Config) -> dict[str, Any] | None:
    """`run --if-new`: the summary to report when this run has nothing to do; None when it has.

    Nothing to do: the run would be incremental, reads no new file, and the workspace's last run had the
    same run id (source, config hash, engine version). Its tables and snapshots would be the published
    ones byte for byte; only the feed's run-to-run state would move (notices carried one run further,
    novelty aged by a rerun without data), which is what a scheduler firing without new data should not
    do. The run publishes nothing and says so (`mode: unchanged`). Not with an external fact store (its
    state is not the workspace's to vouch for).
    """
    if not run.incremental or run.new or cfg.store.backend != "embedded":
        return None
    rows = con.execute("SELECT run_id, summary FROM runs ORDER BY rowid DESC LIMIT 1").fetchall()
    if not rows or rows[0][0] != run.run_id:
        return None
    last = json.loads(rows[0][1]) if isinstance(rows[0][1], str) else dict(rows[0][1])
    reused = dict(last.get("incremental") or {})
    partitions = len(silver.files(con, "events"))
    reused.update(mode="unchanged", reason="no new input since the last run, which had the same config and engine "
                  "version: its published results stand", files_read=0, files_reused=len(run.files),
                  partitions_written=0, partitions_reused=partitions, journeys_recut=0,
                  journeys_reused=int(last.get("journeys", 0)), snapshots_reused=int(last.get("snapshots", 0)))
    return {**last, "events_read_this_run": 0, "incremental": reused}


def report(con: Any, events_read: int) -> dict[str, Any]:
    """The summary's `events_read_this_run` and `incremental` (mode, why, files and partitions read and reused)."""
    run = current(con)
    if run is None:
        return {}
    parts = run.partitions
    return {
        "events_read_this_run": int(parts.get("events_read_this_run", events_read)),
        "incremental": {
            "mode": "incremental" if run.incremental else "full", "reason": run.reason,
            "files_read": len(run.new), "files_reused": len(run.files) - len(run.new),
            "partitions_written": int(parts.get("written", 0)), "partitions_reused": int(parts.get("reused", 0)),
            "journeys_recut": int(parts.get("journeys_recut", 0)), "journeys_reused": int(parts.get("journeys_reused", 0)),
            "snapshots_sealed": int(parts.get("snapshots_sealed", 0)),
            "snapshots_reused": int(parts.get("snapshots_reused", 0)),
        },
    }


def note_partitions(con: Any, counts: dict[str, int]) -> None:
    run = current(con)
    if run is not None:
        run.partitions.update(counts)


def add_counts(con: Any, counts: dict[str, int]) -> None:
    """Add to this run's counts (several journey definitions each add theirs)."""
    run = current(con)
    if run is not None:
        for key, n in counts.items():
            run.partitions[key] = int(run.partitions.get(key, 0)) + n


def origins(con: Any, event_ids: list[str], tenant_id: str = "") -> list[dict[str, Any]]:
    """Where accepted events came from: source file, 1-based line (row for Parquet) and the file's SHA-256.

    `input_order` folds (file index, line) into one integer (engine.staging_sql.LINE_BITS); the file index
    names a row of `parquet_inputs`, recorded when the file was read. Empty for SQL sources (no file).
    """
    from engine.staging_sql import LINE_BITS

    if not silver.is_table(con, INPUTS):
        return []
    rows = con.execute(f"""
        SELECT e.event_id, i.path, e.input_order & ((CAST(1 AS BIGINT) << {LINE_BITS}) - 1) AS line, i.sha256
        FROM events e JOIN {INPUTS} i ON i.file_index = e.input_order >> {LINE_BITS}
        WHERE e.tenant_id = ? AND list_contains(?, e.event_id) ORDER BY e.event_id""", [tenant_id, event_ids]).fetchall()
    return [{"event_id": r[0], "file": r[1], "line": int(r[2]), "sha256": r[3]} for r in rows]
