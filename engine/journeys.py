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
end_ts the last step's time, and it is left out of every conversion number.
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
the same data give the same ids. All the work is vectorised SQL over
`events`; Python only loops over journey definitions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import duckdb

from engine import rules
from engine.config import Config, JourneyConfig, Segment
from engine.dbsettings import engine_settings
from engine.states import LEVEL_COLUMNS
from ontology.errors import ConfigError

log = logging.getLogger(__name__)
_FAR = "9223372036854775807"  # BIGINT max: "no such seq"


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


def build(con: duckdb.DuckDBPyConnection, cfg: Config) -> JourneyStats:
    """Rebuild `journeys` and `journey_steps` for every journey definition in the config."""
    con.execute("""CREATE OR REPLACE TABLE journeys (
        journey VARCHAR, tenant_id VARCHAR, journey_id VARCHAR, actor_id VARCHAR, start_ts TIMESTAMP,
        end_ts TIMESTAMP, outcome VARCHAR, censored BOOLEAN, n_steps INTEGER, segments MAP(VARCHAR, VARCHAR))""")
    con.execute("""CREATE OR REPLACE TABLE journey_steps (
        journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP, event_id VARCHAR)""")
    counts = {}
    for journey in cfg.journeys:
        with engine_settings(con):
            _build_one(con, journey, cfg.segments)
        counts[journey.name] = _count(con, journey.name)
        if not counts[journey.name].journeys:
            log.warning("journey %s: no event is in its start state %r at level %s; check journeys.%s.start",
                        journey.name, journey.start, journey.level, journey.name)
    for table in ("_jg_jbase", "_jg_jends", "_jg_jsteps"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return JourneyStats(by_journey=counts)


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _outcome_sql(journey: JourneyConfig) -> str:
    whens = [f"WHEN {rules.to_duckdb_sql(o.when, f'journeys.{journey.name}.outcomes.{o.name}')} THEN {_literal(o.name)}"
             for o in journey.outcomes if o.when is not None]
    return f"CASE {' '.join(whens)} END" if whens else "CAST(NULL AS VARCHAR)"


def _segment_sql(segment: Segment) -> str:
    if segment.column is not None:
        return f"CAST({rules.column_sql(segment.column, f'segments.{segment.key}.column')} AS VARCHAR)"
    pred = rules.to_duckdb_sql(segment.when or "", f"segments.{segment.key}.when")
    return f"CASE WHEN {pred} THEN 'true' WHEN NOT ({pred}) THEN 'false' END"


def _level_column(journey: JourneyConfig) -> str:
    if journey.level not in LEVEL_COLUMNS:
        raise ConfigError(f"journeys.{journey.name}.level: {journey.level!r} is not one of raw, semantic, lifecycle")
    return LEVEL_COLUMNS[journey.level]


def _build_base(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...]) -> None:
    """Every event inside a journey's observation window, with its state, outcome hit and segment values."""
    level = _level_column(journey)
    segs = "".join(f", {_segment_sql(s)} AS seg_{i}" for i, s in enumerate(segments))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_jbase AS
        WITH starts AS (
          SELECT tenant_id, actor_id, min(seq) AS start_seq, arg_min(ts, seq) AS start_ts
          FROM events WHERE {level} = ? GROUP BY ALL)
        SELECT e.tenant_id, e.actor_id, e.seq, e.ts, e.event_id, s.start_seq, s.start_ts,
               e.{level} AS state,
               CASE WHEN e.seq > s.start_seq THEN {_outcome_sql(journey)} END AS hit{segs}
        FROM events e JOIN starts s USING (tenant_id, actor_id)
        WHERE e.seq >= s.start_seq AND e.ts <= s.start_ts + INTERVAL ({int(journey.window_s)}) SECOND""",
        [journey.start])


def _build_ends(con: duckdb.DuckDBPyConnection, journey: JourneyConfig) -> None:
    """Per journey: the first outcome event and the first inactivity cut before it."""
    gap = journey_inactive_for(journey)
    cut = (f"min(seq) FILTER (WHERE ts - prev_ts >= INTERVAL ({gap}) SECOND)" if gap is not None
           else "CAST(NULL AS BIGINT)")
    cut_prev = (f"arg_min(prev_ts, seq) FILTER (WHERE ts - prev_ts >= INTERVAL ({gap}) SECOND)" if gap is not None
                else "CAST(NULL AS TIMESTAMP)")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_jends AS
        WITH firsts AS (
          SELECT tenant_id, actor_id, any_value(start_seq) AS start_seq, any_value(start_ts) AS start_ts,
                 min(seq) FILTER (WHERE hit IS NOT NULL) AS o_seq,
                 arg_min(hit, seq) FILTER (WHERE hit IS NOT NULL) AS o_name,
                 arg_min(ts, seq) FILTER (WHERE hit IS NOT NULL) AS o_ts
          FROM _jg_jbase GROUP BY ALL),
        timeline AS (   -- steps up to the outcome event, and the outcome event itself
          SELECT b.tenant_id, b.actor_id, b.seq, b.ts, lag(b.ts) OVER w AS prev_ts
          FROM _jg_jbase b JOIN firsts f USING (tenant_id, actor_id)
          WHERE ((b.state IS NOT NULL AND b.hit IS NULL) OR b.seq = f.o_seq) AND b.seq <= coalesce(f.o_seq, {_FAR})
          WINDOW w AS (PARTITION BY b.tenant_id, b.actor_id ORDER BY b.seq))
        SELECT f.*, c.cut_seq, c.cut_prev_ts
        FROM firsts f JOIN (
          SELECT tenant_id, actor_id, {cut} AS cut_seq, {cut_prev} AS cut_prev_ts FROM timeline GROUP BY ALL
        ) c USING (tenant_id, actor_id)""")


def journey_inactive_for(journey: JourneyConfig) -> int | None:
    for outcome in journey.outcomes:
        if outcome.inactive_for_s is not None:
            return int(outcome.inactive_for_s)
    return None


def _build_steps(con: duckdb.DuckDBPyConnection, journey: JourneyConfig) -> None:
    collapse = "AND state IS DISTINCT FROM prev_state" if journey.collapse_self_loops else ""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_jsteps AS
        WITH kept AS (
          SELECT b.tenant_id, b.actor_id, b.seq, b.ts, b.event_id, b.state,
                 lag(b.state) OVER (PARTITION BY b.tenant_id, b.actor_id ORDER BY b.seq) AS prev_state
          FROM _jg_jbase b JOIN _jg_jends e USING (tenant_id, actor_id)
          WHERE b.state IS NOT NULL AND b.hit IS NULL AND b.seq < coalesce(e.cut_seq, e.o_seq, {_FAR}))
        SELECT tenant_id, actor_id, seq, ts, event_id, state,
               row_number() OVER (PARTITION BY tenant_id, actor_id ORDER BY seq) - 1 AS step
        FROM kept WHERE true {collapse}""")


def _insert(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...]) -> None:
    name, window, gap = _literal(journey.name), int(journey.window_s), journey_inactive_for(journey)
    dropoff = _literal(journey.dropoff_outcome)
    trailing = (f"WHEN last_ts + INTERVAL ({gap}) SECOND <= start_ts + INTERVAL ({window}) SECOND "
                f"THEN last_ts + INTERVAL ({gap}) SECOND" if gap is not None else "")
    cut_end = f"cut_prev_ts + INTERVAL ({gap}) SECOND" if gap is not None else "CAST(NULL AS TIMESTAMP)"
    seg_values = ", ".join(
        f"coalesce(arg_min(b.seg_{i}, b.seq) FILTER (WHERE b.seg_{i} IS NOT NULL AND b.seq <= s.last_seq), '(none)')"
        for i in range(len(segments)))
    seg_map = (f"MAP([{', '.join(_literal(s.key) for s in segments)}], [{seg_values}])" if segments
               else "CAST(MAP() AS MAP(VARCHAR, VARCHAR))")
    con.execute(f"""
        INSERT INTO journeys
        WITH data_end AS (SELECT tenant_id, max(ts) AS data_end FROM events GROUP BY ALL),
        step_summary AS (
          SELECT tenant_id, actor_id, count(*) AS n_steps, max(ts) AS last_ts, max(seq) AS last_seq
          FROM _jg_jsteps GROUP BY ALL),
        segs AS (
          SELECT b.tenant_id, b.actor_id, {seg_map} AS segments
          FROM _jg_jbase b JOIN step_summary s USING (tenant_id, actor_id) GROUP BY ALL),
        ends AS (
          SELECT e.*, s.n_steps, s.last_ts, d.data_end,
                 e.start_ts + INTERVAL ({window}) SECOND > d.data_end AS censored,
                 CASE WHEN e.cut_seq IS NOT NULL THEN {dropoff} WHEN e.o_seq IS NOT NULL THEN e.o_name
                      ELSE {dropoff} END AS outcome_raw,
                 CASE WHEN e.cut_seq IS NOT NULL THEN {cut_end} WHEN e.o_seq IS NOT NULL THEN e.o_ts
                      {trailing} ELSE e.start_ts + INTERVAL ({window}) SECOND END AS end_raw
          FROM _jg_jends e JOIN step_summary s USING (tenant_id, actor_id) JOIN data_end d USING (tenant_id))
        SELECT {name}, ends.tenant_id,
               substr(sha256('journey' || chr(0) || CAST(to_json([ends.tenant_id, {name}, ends.actor_id]) AS VARCHAR)), 1, 24),
               ends.actor_id, start_ts,
               CASE WHEN censored THEN last_ts ELSE end_raw END,
               CASE WHEN censored THEN NULL ELSE outcome_raw END,
               censored, n_steps, segs.segments
        FROM ends JOIN segs USING (tenant_id, actor_id)
        ORDER BY ends.tenant_id, ends.actor_id""")
    con.execute(f"""
        INSERT INTO journey_steps
        SELECT j.journey, j.journey_id, s.step, s.state, s.ts, s.event_id
        FROM _jg_jsteps s JOIN journeys j ON j.journey = {name} AND j.tenant_id = s.tenant_id AND j.actor_id = s.actor_id
        ORDER BY j.journey_id, s.step""")


def _build_one(con: duckdb.DuckDBPyConnection, journey: JourneyConfig, segments: tuple[Segment, ...]) -> None:
    _build_base(con, journey, segments)
    _build_ends(con, journey)
    _build_steps(con, journey)
    _insert(con, journey, segments)


def _count(con: duckdb.DuckDBPyConnection, name: str) -> JourneyCount:
    total, censored = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE censored) FROM journeys WHERE journey = ?", [name]).fetchall()[0]
    outcomes = dict(con.execute(
        "SELECT outcome, count(*) FROM journeys WHERE journey = ? AND NOT censored GROUP BY ALL ORDER BY ALL",
        [name]).fetchall())
    return JourneyCount(journeys=total, censored=censored, outcomes=outcomes)
