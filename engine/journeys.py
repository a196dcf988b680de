"""Cut each actor's events into journeys: the `journeys` and `journey_steps` tables.

The journey rule (docs/contracts.md) for one journey definition:

* **Start**: one journey per (tenant, actor), from the actor's first event
  whose state at the journey's level is the start state.
* **Observation window**: ``[start_ts, start_ts + window]``; later events are
  not looked at.
* **Steps**: the events' states at that level, in `seq` order (events with a
  NULL state there are skipped), optionally with consecutive repeats
  collapsed (`collapse_self_loops`).
* **End**, whichever comes first: a predicate outcome event (the first event
  after the start matching an outcome rule, first rule wins; its time is the
  outcome time and it is not a step); an inactivity gap of at least
  `inactive_for` between steps, or between the last step and the outcome event
  or the window's end (outcome time = last step + `inactive_for`); otherwise
  the window's end (outcome time = window end). Both latter cases are the
  journey's `dropoff_outcome`.

**Censoring**: a journey with ``start_ts + window > data_end`` (the tenant's
last event) is censored, whatever happened in it: its outcome is NULL, its
end_ts the last step's time, and it is left out of every count over
completed journeys.

**Progress of censored journeys** (`journey_progress`, one row per censored
journey): what the data already says about it. Its outcome and end are known
when the end the rule gives (``end_raw``: outcome event, inactivity cut, last
step + `inactive_for`, or the window's end) is at or before the data end: the
rule's decision cannot change with later data then (a later event can neither
come before `data_end` nor undo a gap already longer than `inactive_for`).
Otherwise `known_outcome`/`known_end_ts` are NULL: the journey is open.
engine.incidence uses the known ends as events and the open journeys as
censored at ``data_end − start``; engine.step_counts counts their resolved
steps.
Why this is unbiased: whether a journey counts depends only on *when it
started*, never on *what happened* in it, so the mature cohort is a fair
sample of journeys, and every mature journey had its full window observed,
so its outcome is final. Dropping "still open" journeys instead would keep a
recent journey only if it had already converted, inflating recent conversion;
counting them as drop-offs would deflate it.

Segments: each journey gets one value per configured segment, taken from its
start event, or from the first event of the journey that has one, else
``'(none)'``; a named predicate segment gives ``'true'`` / ``'false'``.

journey_id is a content hash of (tenant, journey name, actor), so reruns on
the same data give the same ids. One unsorted SQL fetch per journey definition
(in parts of actors on very big inputs), put in (actor, seq) order by numpy
(engine.actor_batches), feeds `engine.journey_arrays`, which applies the rule
whole actors at a time; outcome, end time and censoring are then decided in
SQL over one row per journey. No Python loop over journeys or events.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import cut_steps, incremental, rules, silver
from engine import journey_arrays as arrays
from engine.actor_batches import KEYS, actor_order, chunk_bounds, new_actor_flags
from engine.arrow_scan import fetch, in_batches
from engine.config import Config, JourneyConfig, Segment
from engine.dbsettings import engine_settings
from engine.journey_arrays import NONE
from engine.states import LEVEL_COLUMNS
from ontology.errors import ConfigError

log = logging.getLogger(__name__)
BuildOne = Callable[[duckdb.DuckDBPyConnection, JourneyConfig, tuple[Segment, ...], bool], None]
CHUNK_EVENTS = 1_000_000  # window rows cut in one numpy pass and inserted at once
PART_EVENTS = 16_000_000  # events whose window rows are fetched and ordered at once: bounds the Arrow held
_BATCH_ROWS = 500_000
ACTOR = "a"  # the window rows' actor number: its row in the starts table (STARTS)
STARTS = "_jg_starts"
RECUT = "_jg_recut"  # an incremental run's journeys cut again (their ids), while the build runs
# journey_id and actor_id in the per-journey tables (_decide writes two whole every run, a full run's cut
# writes `journey_cuts`): one value a row, which DuckDB's dictionary+FSST analysis compresses at ~0.2-0.3 µs
# a row for a 2x smaller column. Stored plain: at 10 M events (1.27 M journeys) the journey_id of `journeys`
# and `journey_progress` ~0.3 CPU-s less (the database file 112 -> 132 MB), both ids of `journey_cuts` 0.46 and
# actor_id of `journeys` 0.18 more (medians of five pairs; the file ~38 MB bigger again, whose private copy each
# run makes costs a few ms); the same rows, and a scan of them no slower.
ID_COLUMN = "VARCHAR USING COMPRESSION uncompressed"


@dataclass(frozen=True)
class JourneyCount:
    """Per journey definition: how many journeys, how many censored, and mature outcome counts."""

    journeys: int
    censored: int
    outcomes: dict[str, int] = field(default_factory=dict)

    @property
    def mature(self) -> int:
        return self.journeys - self.censored


@dataclass(frozen=True)
class JourneyStats:
    by_journey: dict[str, JourneyCount]

    @property
    def journeys(self) -> int:
        return sum(c.journeys for c in self.by_journey.values())

    @property
    def censored(self) -> int:
        return sum(c.censored for c in self.by_journey.values())


def build(con: duckdb.DuckDBPyConnection, cfg: Config, build_one: BuildOne | None = None) -> JourneyStats:
    """Rebuild `journeys` and `journey_steps` for every journey definition in the config.

    In a workspace the run's events are first written out as silver Parquet (engine.silver) and the
    steps are written out as gold Parquet at the end: a full run's straight from the cut's Arrow
    (engine.cut_steps), an incremental run's through a working copy beside the kept steps. Each journey's cut
    (everything the rule decides from the actor's own events) is kept in `journey_cuts`; outcome, end
    and censoring, which also depend on the data end, are decided from it for every journey. An
    incremental run (engine.incremental) cuts again only the actors with new events and keeps the
    other cuts and steps. `build_one` cuts one journey definition into `journey_cuts` and the steps
    (default: the DuckDB path below; engine.spark passes its own).
    """
    run = incremental.current(con)
    with engine_settings(con):  # the memory limit bounds the sort of every event (it spills instead)
        written = silver.persist_events(con, replace_all=run is None or not run.incremental)
    incremental.note_partitions(con, written)
    incremental.commit(con)
    only_touched = incremental.journeys_reusable(con, cfg)
    incremental.begin_journeys(con)  # an interrupted build leaves cuts that the next run must not reuse
    # the open base stays and the changed journeys go to a delta, until the delta is due to be folded in
    keep_base = only_touched and not silver.open_compaction_due(con, _touched_steps(con))
    sealing = incremental.sealing_bound(con, cfg) if keep_base else None
    delta = sealing is not None
    _working_tables(con, only_touched, sealing)
    if not only_touched and silver.root_of(con) is not None:
        cut_steps.start(con)  # the steps go to the gold files as Arrow, not through the working table
    try:
        counts = {}
        for journey in cfg.journeys:
            with engine_settings(con):
                (build_one or _build_one)(con, journey, cfg.segments, only_touched)
                _decide(con, journey)
            counts[journey.name] = _count(con, journey.name)
            if not counts[journey.name].journeys:
                log.warning("journey %s: no event is in its start state %r at level %s; check journeys.%s.start",
                            journey.name, journey.start, journey.level, journey.name)
        con.execute("DROP TABLE IF EXISTS _jg_jgroups")
        con.execute("DROP VIEW IF EXISTS _jg_stored_steps")
        incremental.finish_journeys(con, cfg, only_touched)
        with engine_settings(con):
            _persist_steps(con, cfg, only_touched, delta)
    finally:
        cut_steps.stop(con)
    con.execute(f"DROP TABLE IF EXISTS {RECUT}")
    return JourneyStats(by_journey=counts)


def _touched_steps(con: duckdb.DuckDBPyConnection) -> int:
    """Steps of the open journeys of actors with new events (their stored cuts): what this run cuts again."""
    return int(con.execute(f"SELECT coalesce(sum(n_steps), 0) FROM journey_cuts WHERE NOT sealed AND (tenant_id, actor_id) "
                           f"IN (SELECT * FROM {incremental.TOUCHED})").fetchall()[0][0])


def _persist_steps(con: duckdb.DuckDBPyConnection, cfg: Config, only_touched: bool, delta: bool) -> None:
    """Write the steps out; journeys that end before this run's watermark minus the late-arrival tolerance are sealed.

    A later event is never earlier than that bound (the late rule), so it can neither start, extend nor end
    such a journey: its cut and steps are final, kept in a sealed file and never cut again. `delta`: the
    working steps are only the journeys this run changes (engine.silver's open delta).
    """
    bound = incremental.sealing_bound(con, cfg)
    ids = "SELECT journey_id FROM journey_cuts WHERE NOT sealed"  # every journey the working steps belong to
    if bound is None:
        silver.persist_steps(con, journey_ids=ids)
        return
    newly = f"SELECT journey_id FROM journey_cuts WHERE NOT sealed AND end_raw < {_timestamp(bound)}"
    silver.persist_steps(con, sealed_ids=newly, keep_sealed=only_touched, journey_ids=ids,
                         superseded_ids=f"SELECT journey_id FROM {RECUT}" if delta else None)
    con.execute(f"UPDATE journey_cuts SET sealed = true WHERE journey_id IN ({newly})")


def _timestamp(at: datetime) -> str:
    return f"TIMESTAMP '{at:%Y-%m-%d %H:%M:%S.%f}'"


def _working_tables(con: duckdb.DuckDBPyConnection, only_touched: bool, sealing: datetime | None = None) -> None:
    """Empty `journeys`/`journey_progress`; `journey_cuts` and the steps emptied too, or (incremental) kept
    for every actor without new events.

    `sealing` (an incremental run that keeps the open base: engine.silver's delta): the working steps get
    only the kept journeys the run writes again — the delta's, and the base's that this bound seals — not
    every open journey; RECUT lists the journeys cut again (their base steps are superseded).
    """
    con.execute(f"""CREATE OR REPLACE TABLE journeys (
        journey VARCHAR, tenant_id VARCHAR, journey_id {ID_COLUMN}, actor_id {ID_COLUMN}, start_ts TIMESTAMP,
        end_ts TIMESTAMP, outcome VARCHAR, censored BOOLEAN, n_steps INTEGER, segments MAP(VARCHAR, VARCHAR))""")
    con.execute(f"""CREATE OR REPLACE TABLE journey_progress (
        journey VARCHAR, journey_id {ID_COLUMN}, known_outcome VARCHAR, known_end_ts TIMESTAMP, data_end TIMESTAMP)""")
    if only_touched:  # sealed journeys stay as they are, in their sealed files
        silver.create_view(con, "journey_steps", name="_jg_stored_steps", open_only=True)
        touched = f"NOT sealed AND (tenant_id, actor_id) IN (SELECT * FROM {incremental.TOUCHED})"
        con.execute(f"CREATE OR REPLACE TEMP TABLE {RECUT} AS SELECT journey, journey_id, start_ts FROM journey_cuts WHERE {touched}")
        con.execute(f"DELETE FROM journey_cuts WHERE {touched}")
    else:
        con.execute(f"""CREATE OR REPLACE TABLE journey_cuts (
            journey VARCHAR, tenant_id VARCHAR, journey_id {ID_COLUMN}, actor_id {ID_COLUMN}, start_ts TIMESTAMP,
            last_ts TIMESTAMP, outcome_raw VARCHAR, end_raw TIMESTAMP, n_steps INTEGER, segments MAP(VARCHAR, VARCHAR),
            sealed BOOLEAN)""")
    if silver.root_of(con) is not None:
        silver.make_temp_table(con, "journey_steps")
    else:
        con.execute(silver.ddl("journey_steps", temp=False))
    if only_touched and sealing is None:  # the kept journeys' steps, unchanged: their actors have no new event
        con.execute("INSERT INTO journey_steps SELECT * FROM _jg_stored_steps s "
                    "WHERE s.journey_id IN (SELECT journey_id FROM journey_cuts WHERE NOT sealed)")
    elif only_touched and sealing is not None:
        silver.create_view(con, "journey_steps", name="_jg_stored_delta", open_only=True, delta_only=True)
        con.execute(f"""INSERT INTO journey_steps
                        SELECT * FROM _jg_stored_delta WHERE journey_id IN (SELECT journey_id FROM journey_cuts WHERE NOT sealed)
                        UNION ALL
                        SELECT * FROM _jg_stored_steps WHERE journey_id IN (
                          SELECT journey_id FROM journey_cuts WHERE NOT sealed AND end_raw < {_timestamp(sealing)}
                          EXCEPT SELECT journey_id FROM _jg_stored_delta)""")
        con.execute("DROP VIEW _jg_stored_delta")


def _decide(con: duckdb.DuckDBPyConnection, journey: JourneyConfig) -> None:
    """Journeys and progress rows from the cuts: censored when the window is not over by the tenant's data end."""
    name, window = _literal(journey.name), int(journey.window_s)
    recent = silver.recent_events(con)  # every tenant's last event is in its latest day file: read only those
    # once, not per statement: a query over the events view opens every day file's footer, however many it skips
    con.execute(f"CREATE OR REPLACE TEMP TABLE _jg_data_end AS SELECT tenant_id, max(ts) AS data_end FROM events {recent} GROUP BY ALL")
    cuts = f"""(SELECT c.*, d.data_end, c.start_ts + INTERVAL ({window}) SECOND > d.data_end AS censored
               FROM journey_cuts c JOIN _jg_data_end d
               USING (tenant_id) WHERE c.journey = {name})"""  # read twice: cheaper than a copy of every cut
    con.execute(f"""
        INSERT INTO journeys
        SELECT {name}, tenant_id, journey_id, actor_id, start_ts,
               CASE WHEN censored THEN last_ts ELSE end_raw END,
               CASE WHEN censored THEN NULL ELSE outcome_raw END,
               censored, n_steps, segments
        FROM {cuts} ORDER BY tenant_id, actor_id""")
    con.execute(f"""
        INSERT INTO journey_progress
        SELECT {name}, journey_id, CASE WHEN end_raw <= data_end THEN outcome_raw END,
               CASE WHEN end_raw <= data_end THEN end_raw END, data_end
        FROM {cuts} WHERE censored ORDER BY tenant_id, actor_id""")
    con.execute("DROP TABLE _jg_data_end")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def segment_sql(segment: Segment, dialect: str = "duckdb") -> str:
    """A segment's value per event, as text (dialect duckdb or spark)."""
    if segment.column is not None:
        text = "VARCHAR" if dialect == "duckdb" else "STRING"
        return f"CAST({rules.column_sql(segment.column, f'segments.{segment.key}.column', dialect)} AS {text})"
    pred = rules.compile_sql(segment.when or "", f"segments.{segment.key}.when", dialect)
    return f"CASE WHEN {pred} THEN 'true' WHEN NOT ({pred}) THEN 'false' END"


def outcome_code_sql(journey: JourneyConfig, dialect: str = "duckdb") -> str:
    """The index of the first outcome rule an event matches (NULL for none)."""
    codes = [f"WHEN {rules.compile_sql(o.when, f'journeys.{journey.name}.outcomes.{o.name}', dialect)} THEN {i}"
             for i, o in enumerate(journey.outcomes) if o.when is not None]
    return f"CASE {' '.join(codes)} END" if codes else "CAST(NULL AS INTEGER)"


def journey_inactive_for(journey: JourneyConfig) -> int | None:
    for outcome in journey.outcomes:
        if outcome.inactive_for_s is not None:
            return int(outcome.inactive_for_s)
    return None


def _level_column(journey: JourneyConfig) -> str:
    if journey.level not in LEVEL_COLUMNS:
        raise ConfigError(f"journeys.{journey.name}.level: {journey.level!r} is not one of raw, semantic, lifecycle")
    return LEVEL_COLUMNS[journey.level]


def _starts_sql(journey: JourneyConfig, segments: tuple[Segment, ...], only_touched: bool = False,
               since: datetime | None = None) -> str:
    """One row per actor with a start event (its first one), its journey's id and the start event's segment
    values (`start_seg_<i>`), numbered `a` from 0 in (tenant, actor) order.

    Why numbers: the window rows then carry two integers (a, seq) that numpy sorts, and no names; the
    names and ids are taken from this table by number, once per journey. Why the segments here: a journey
    takes its start event's value when it has one, so the window rows need them only for the other journeys.
    `since`: no start event is earlier (`_first_start_bound`); a literal, so the older day files are skipped.
    """
    segs = "".join(f", arg_min_null({segment_sql(s)}, seq) AS start_seg_{i}" for i, s in enumerate(segments))
    return f"""
        SELECT *, row_number() OVER (ORDER BY tenant_id, actor_id) - 1 AS {ACTOR}, {_journey_id_sql(journey)} AS journey_id
        FROM (SELECT tenant_id, actor_id, min(seq) AS start_seq, arg_min(ts, seq) AS start_ts{segs}
              FROM events {_touched_sql(journey) if only_touched else ""}
              WHERE {_level_column(journey)} = $start {"" if since is None else f"AND ts >= {_timestamp(since)}"}
              GROUP BY ALL)
        ORDER BY {ACTOR}"""


def _journey_id_sql(journey: JourneyConfig) -> str:
    """journey_id: a content hash of (tenant, journey name, actor)."""
    name = _literal(journey.name)
    return f"substr(sha256('journey' || chr(0) || CAST(to_json([tenant_id, {name}, actor_id]) AS VARCHAR)), 1, 24)"


def _rows_sql(journey: JourneyConfig, segments: tuple[Segment, ...], since: datetime | None = None) -> str:
    """Every event inside a journey's observation window (start event first in seq order), unsorted.

    The actors are `_starts_sql`'s rows (registered as STARTS) numbered lo <= a < hi ($lo, $hi). The
    outcome rules become integer codes (first rule wins) and the level's state stays text. A segment's
    value is read only for actors whose start event lacks one (the JSON lookups cost a third of the query).
    `since`: the earliest start (seq follows time, so no window row is earlier), as a literal that skips the
    older day files: an incremental run's window rows are then read from its open journeys' days alone.
    """
    level = _level_column(journey)
    hit = outcome_code_sql(journey)
    segs = "".join(f", CASE WHEN s.start_seg_{i} IS NULL THEN {segment_sql(s)} END AS seg_{i}"
                   for i, s in enumerate(segments))
    return f"""
        SELECT s.{ACTOR}, e.seq, epoch_us(e.ts) AS ts_us, e.event_id, e.{level} AS state,
               CASE WHEN e.seq > s.start_seq THEN {hit} END AS hit{segs}
        FROM events e JOIN (SELECT * FROM {STARTS} WHERE {ACTOR} >= $lo AND {ACTOR} < $hi) s USING (tenant_id, actor_id)
        WHERE e.seq >= s.start_seq AND e.ts <= s.start_ts + INTERVAL ({int(journey.window_s)}) SECOND
          {"" if since is None else f"AND e.ts >= {_timestamp(since)}"}"""


def _touched_sql(journey: JourneyConfig) -> str:
    """Actors with new events, less those whose journey is sealed (a later event cannot change it)."""
    return (f"SEMI JOIN (SELECT tenant_id, actor_id FROM {incremental.TOUCHED} EXCEPT SELECT tenant_id, actor_id "
            f"FROM journey_cuts WHERE journey = {_literal(journey.name)} AND sealed) USING (tenant_id, actor_id)")


@dataclass(frozen=True)
class _Rows:
    """Window rows in any order as arrays, and `order`: their positions in (actor, seq) order."""

    order: np.ndarray
    new_actor: np.ndarray  # per sorted position: the first row of its actor
    actor: np.ndarray | None  # per row: the actor's number in the starts table (None: named by `text`'s KEYS)
    ts: np.ndarray
    hit: np.ndarray
    state: np.ndarray
    state_names: pa.Array
    valid: tuple[np.ndarray, ...]  # per segment, per row: it has a value
    text: pa.Table  # event_id and the segments (and KEYS without `actor`): taken only at the rows kept


def _rows(table: pa.Table, n_segments: int, order: np.ndarray | None = None) -> _Rows:
    """The arrays of fetched window rows: unsorted with an ACTOR column (ordered here), or (no ACTOR column)
    already sorted by (tenant_id, actor_id, seq)."""
    state, state_names = _codes(table.column("state"))
    segs = [f"seg_{i}" for i in range(n_segments)]
    if ACTOR in table.column_names:
        actor = table.column(ACTOR).to_numpy()
        order = actor_order(actor, table.column("seq").to_numpy())
        new_actor = np.ones(len(order), dtype=bool)
        new_actor[1:] = actor[order[1:]] != actor[order[:-1]]
        text = table.select(["event_id", *segs]).combine_chunks()  # a take from chunks concatenates them each time
    else:
        actor, order, new_actor, text = None, np.arange(table.num_rows), new_actor_flags(table), table
    return _Rows(order=order, new_actor=new_actor, actor=actor, ts=table.column("ts_us").to_numpy(),
                 hit=_small(table.column("hit").fill_null(NONE).to_numpy()), state=state,
                 state_names=state_names, text=text,
                 valid=tuple(table.column(s).is_valid().to_numpy(zero_copy_only=False) for s in segs))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """(integer code per row with NONE for null, dictionary) of a text column."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    return _small(encoded.indices.fill_null(NONE).to_numpy()), encoded.dictionary


def _small(codes: np.ndarray) -> np.ndarray:
    """Codes (>= NONE) in the smallest signed integer type that holds them: the cut gathers them row by row."""
    top = int(codes.max(initial=0))
    return codes.astype(np.int8 if top <= np.iinfo(np.int8).max else np.int16 if top <= np.iinfo(np.int16).max
                        else np.int32 if top <= np.iinfo(np.int32).max else np.int64, copy=False)


def _cut_chunk(table: pa.Table, journey: JourneyConfig, n_segments: int, offset: int) -> tuple[pa.Table, pa.Table]:
    """Rows sorted by (tenant_id, actor_id, seq) -> (one row per journey, one row per kept step), journeys
    numbered from `offset` (engine.spark's entry)."""
    return _cut_sorted(_rows(table, n_segments), 0, table.num_rows, journey, offset)


def _cut_sorted(rows: _Rows, lo: int, hi: int, journey: JourneyConfig, offset: int,
                actors: pa.Table | None = None) -> tuple[pa.Table, pa.Table]:
    """Sorted positions [lo, hi) (whole actors) -> (one row per journey, one row per kept step), journeys
    numbered from `offset`. `actors` (the DuckDB path): the starts table, whose names and ids go with each journey."""
    at = rows.order[lo:hi]  # sorted position -> fetched row
    gid, first_rows = arrays.group_starts(rows.new_actor[lo:hi])
    ts, hit, state = rows.ts[at], rows.hit[at], rows.state[at]
    gap = journey_inactive_for(journey)
    cut = arrays.cut(gid, first_rows, state, hit, ts, None if gap is None else gap * 1_000_000,
                     bool(journey.collapse_self_loops))
    names = [o.name for o in journey.outcomes]
    row_ts = lambda positions: _masked(ts, positions).cast(pa.timestamp("us"))
    if actors is None or rows.actor is None:  # engine.spark: the rows are named, their segments all fetched
        own, ids = rows.text.select(list(KEYS)).take(at[first_rows]), []
    else:
        own, ids = actors.take(pa.array(rows.actor[at[first_rows]])), ["journey_id"]
    groups: dict[str, Any] = {"jidx": np.arange(len(first_rows), dtype=np.int64) + offset,
                              **{key: own.column(key) for key in (*KEYS, *ids)}}
    groups.update({
        "start_ts": row_ts(first_rows), "o_ts": row_ts(cut.outcome_rows),
        "o_name": pa.array(names, type=pa.string()).take(_masked(hit, cut.outcome_rows)),
        "has_cut": cut.cut_rows != NONE, "cut_prev_ts": row_ts(cut.cut_prev_rows),
        "last_ts": row_ts(cut.last_step_rows), "n_steps": cut.n_steps,
    })
    for i, valid in enumerate(rows.valid):  # the start event's value (`actors`), else the first in the rows
        first = arrays.first_valid_up_to(valid[at], gid, cut.last_step_rows)
        seg = rows.text.column(f"seg_{i}").take(pa.array(at[np.maximum(first, 0)], mask=first == NONE))
        groups[f"seg_{i}"] = pc.coalesce(own.column(f"start_seg_{i}"), seg) if ids else seg
    steps = pa.table({
        "jidx": cut.step_journey + offset, "step": cut.step_number.astype(np.int32),
        "state": pa.DictionaryArray.from_arrays(pa.array(state[cut.step_rows].astype(np.int32)), rows.state_names),
        "ts": row_ts(cut.step_rows),
        "event_id": rows.text.column("event_id").take(at[cut.step_rows]),
    })
    return pa.table(groups), steps


def _masked(values: np.ndarray, rows: np.ndarray) -> pa.Array:
    """values[rows] as an Arrow array, null where rows is NONE."""
    missing = rows == NONE
    return pa.array(np.where(missing, 0, values[np.maximum(rows, 0)]), mask=missing)


def _build_one(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...],
               only_touched: bool = False) -> None:
    """Fetch the window rows unsorted, order them in numpy, cut whole actors at a time and insert their
    journeys and steps.

    Actors are fetched in parts of about PART_EVENTS events (one part up to that size: each part scans the
    events again) and cut in chunks of about CHUNK_EVENTS rows, so memory stays bounded however big the input.
    """
    since = _first_start_bound(con, journey) if only_touched else None
    actors = con.sql(_starts_sql(journey, segments, only_touched, since), params={"start": journey.start}).to_arrow_table()
    events = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    parts = max(1, -(-events // PART_EVENTS))
    first = pc.min(actors.column("start_ts")).as_py() if actors.num_rows else None
    sql, offset = _rows_sql(journey, segments, first), 0
    con.register(STARTS, actors)
    try:
        for part in range(parts):
            bounds = {"lo": part * actors.num_rows // parts, "hi": (part + 1) * actors.num_rows // parts}
            rows = _rows(fetch(con, sql, bounds, rows=_BATCH_ROWS), len(segments))
            for lo, hi in chunk_bounds(rows.new_actor, CHUNK_EVENTS):
                groups, steps = _cut_sorted(rows, lo, hi, journey, offset, actors)
                offset += groups.num_rows
                _insert(con, journey, segments, groups, steps)
            del rows
    finally:
        con.unregister(STARTS)


def _first_start_bound(con: duckdb.DuckDBPyConnection, journey: JourneyConfig) -> datetime | None:
    """An incremental run: no touched actor's (unsealed) journey starts before this instant.

    A new event is never before the previous watermark minus the late-arrival tolerance (the late rule), so
    an actor's events before its first new one keep their seq, session and states. Its first start event
    is then its stored cut's start (RECUT), or at or after the bound; an actor without a stored cut had no
    start event before it. None: no bound known (every day is read).
    """
    run = incremental.current(con)
    sealed = None if run is None else run.sealed_before()
    if sealed is None:
        return None
    recut = con.execute(f"SELECT min(start_ts) FROM {RECUT} WHERE journey = ?", [journey.name]).fetchall()[0][0]
    return sealed if recut is None else min(sealed, recut)


def _insert(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...],
            groups: pa.Table, steps: pa.Table) -> None:
    """Journey cuts (the rule's outcome and end before censoring, decided in SQL as documented above) and steps.

    `groups` without a journey_id column (engine.spark) get their ids here."""
    name, window, gap = _literal(journey.name), int(journey.window_s), journey_inactive_for(journey)
    dropoff = _literal(journey.dropoff_outcome)
    trailing = (f"WHEN last_ts + INTERVAL ({gap}) SECOND <= start_ts + INTERVAL ({window}) SECOND "
                f"THEN last_ts + INTERVAL ({gap}) SECOND" if gap is not None else "")
    cut_end = f"cut_prev_ts + INTERVAL ({gap}) SECOND" if gap is not None else "CAST(NULL AS TIMESTAMP)"
    values = [f"coalesce(seg_{i}, '(none)') AS v_{i}" for i in range(len(segments))]
    combos = "" if not segments else (  # a MAP built per distinct combination of values: building costs ~1 µs a row
        f"""JOIN (SELECT *, MAP([{', '.join(_literal(s.key) for s in segments)}], [{', '.join(v.split()[-1] for v in values)}])
                   AS segments FROM (SELECT DISTINCT {', '.join(values)} FROM _jg_jgroups_arrow WHERE n_steps > 0))
             ON {' AND '.join(f"coalesce(seg_{i}, '(none)') = v_{i}" for i in range(len(segments)))}""")
    seg_map = "segments" if segments else "CAST(MAP() AS MAP(VARCHAR, VARCHAR))"
    if "journey_id" not in groups.column_names:
        groups = groups.append_column("journey_id", _journey_ids(con, journey, groups))
    con.register("_jg_jgroups_arrow", in_batches(groups))
    try:
        con.execute(f"""
            INSERT INTO journey_cuts
            SELECT {name}, tenant_id, journey_id, actor_id, start_ts, last_ts,
                   CASE WHEN has_cut THEN {dropoff} WHEN o_ts IS NOT NULL THEN o_name ELSE {dropoff} END,
                   CASE WHEN has_cut THEN {cut_end} WHEN o_ts IS NOT NULL THEN o_ts
                        {trailing} ELSE start_ts + INTERVAL ({window}) SECOND END,
                   n_steps, {seg_map}, false
            FROM _jg_jgroups_arrow {combos} WHERE n_steps > 0""")
    finally:
        con.unregister("_jg_jgroups_arrow")
    offset = int(groups.column("jidx")[0].as_py()) if groups.num_rows else 0
    local = steps.column("jidx").to_numpy() - offset  # the steps' journeys by position in `groups`: no join
    if cut_steps.keep(con, journey.name, groups.column("journey_id"), steps.set_column(0, "jidx", pa.array(local))):
        return  # a full run: written to the gold files from the buffer (engine.cut_steps)
    ids = groups.column("journey_id").take(pa.array(local))
    con.register("_jg_jsteps_arrow", in_batches(steps.drop_columns(["jidx"]).add_column(0, "journey_id", ids)))
    try:
        con.execute(f"INSERT INTO journey_steps SELECT {name}, journey_id, step, state, ts, event_id FROM _jg_jsteps_arrow")
    finally:
        con.unregister("_jg_jsteps_arrow")


def _journey_ids(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, groups: pa.Table) -> pa.ChunkedArray:
    """The journey_id of each row of `groups` (tenant_id, actor_id), in row order."""
    con.register("_jg_jkeys_arrow", groups.select(["jidx", *KEYS]))
    try:
        return con.sql(f"SELECT {_journey_id_sql(journey)} FROM _jg_jkeys_arrow ORDER BY jidx").to_arrow_table().column(0)
    finally:
        con.unregister("_jg_jkeys_arrow")


def _count(con: duckdb.DuckDBPyConnection, name: str) -> JourneyCount:
    total, censored = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE censored) FROM journeys WHERE journey = ?", [name]).fetchall()[0]
    outcomes = dict(con.execute(
        "SELECT outcome, count(*) FROM journeys WHERE journey = ? AND NOT censored GROUP BY ALL ORDER BY ALL",
        [name]).fetchall())
    return JourneyCount(journeys=total, censored=censored, outcomes=outcomes)
