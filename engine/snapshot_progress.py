"""The snapshot's estimates that use journeys still in progress (engine.snapshot calls these).

* `OBSERVED_SQL`: per journey, what it contributes to the outcome-probability
  estimate and whether it is complete, partial or unobserved;
* `incidence_by_scope`: Aalen–Johansen P(outcome within the window) per scope
  (engine.incidence);
* `horizon`: how long after entering a state its step is resolved in an open
  journey (engine.step_counts counts those steps);
* `estimates` / `in_progress_json`: the payload fields and their JSON view,
  with the estimator behind every number (ESTIMATORS).

engine.resolved recounts the same numbers journey by journey in plain SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import incidence, journeys, scope_pool, silver, snapshot_estimates
from engine.config import JourneyConfig
from engine.step_arrays import NULL_TS, StepArrays


def r6(value: float | None) -> float | None:
    from engine.snapshot import r6 as round6

    return round6(value)


# What each journey contributes to the outcome-probability estimate (engine.incidence): its end time and
# outcome when known by the data end (completed journeys, and censored ones whose end is already decided:
# engine.journeys' journey_progress), else censored at its follow-up (data end − start). status: complete
# (outcome known), partial (open, its first step already resolved: engine.step_counts), unobserved (open,
# nothing resolved yet; it still adds risk time to the outcome estimate). One row per journey, with the journey's
# own columns and `jix` (its rowid: engine.step_arrays); engine.snapshot reads it as a subquery.
OBSERVED_SQL = """
WITH b AS (
  SELECT j.rowid AS jix, coalesce(j.tenant_id, '') AS tenant_id, j.journey_id, j.actor_id, j.outcome, j.censored,
         j.start_ts, j.end_ts, j.segments, e.data_end, p.known_outcome, p.journey_id IS NOT NULL AS tracked,
         CASE WHEN NOT j.censored THEN j.end_ts WHEN p.known_end_ts <= e.data_end THEN p.known_end_ts END AS end_k,
         CASE WHEN NOT j.censored THEN coalesce(j.outcome, $dropoff)
              WHEN p.known_end_ts <= e.data_end THEN p.known_outcome END AS aj_o
  FROM journeys j JOIN _jg_ends e ON e.tenant_id = coalesce(j.tenant_id, '')
  LEFT JOIN _jg_progress p ON p.journey_id = j.journey_id WHERE j.journey = $journey)
SELECT * EXCLUDE (end_k), greatest(epoch(coalesce(end_k, data_end) - start_ts), 0)::DOUBLE AS aj_t,
       CASE WHEN aj_o IS NOT NULL THEN 'complete'
            WHEN tracked AND $horizon >= 0 AND start_ts + to_seconds($horizon) <= data_end THEN 'partial'
            ELSE 'unobserved' END AS status
FROM b"""
_PROGRESS_SQL = "SELECT journey_id, known_outcome, known_end_ts FROM journey_progress WHERE journey = {journey}"
_NO_PROGRESS_SQL = "SELECT NULL::VARCHAR AS journey_id, NULL::VARCHAR AS known_outcome, NULL::TIMESTAMP AS known_end_ts LIMIT 0"


def observed(con: Any, jc: JourneyConfig) -> None:
    """The _jg_progress view: engine.journeys' journey_progress, or nothing on tables built without it."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    journey = "'" + jc.name.replace("'", "''") + "'"
    progress = _PROGRESS_SQL.format(journey=journey) if "journey_progress" in tables else _NO_PROGRESS_SQL
    con.execute(f"CREATE OR REPLACE TEMP VIEW _jg_progress AS {progress}")


def incidence_by_scope(con: Any, jc: JourneyConfig) -> dict[int, dict[str, Any]]:
    """Aalen–Johansen P(outcome within the window) per scope: one numpy estimate per scope over its classes' rows."""
    table = con.sql("""SELECT cls, aj_t, aj_o, count(*)::DOUBLE AS n FROM _jg_jclass GROUP BY ALL
                       ORDER BY cls, aj_t, aj_o NULLS FIRST""").to_arrow_table()
    members = con.execute("SELECT sid, list(cls ORDER BY cls) FROM _jg_csid GROUP BY sid").fetchall()
    encoded = pc.dictionary_encode(table.column("aj_o").combine_chunks())
    present = [str(o) for o in encoded.dictionary.to_pylist()]
    names = sorted(set(jc.outcome_names) | set(present))
    lookup = np.array([names.index(o) for o in present] + [-1], dtype=np.int64)  # index -1 (NULL) -> censored
    cause = lookup[encoded.indices.fill_null(-1).to_numpy().astype(np.int64)]
    cls = table.column("cls").to_numpy().astype(np.int64)
    times, weights = table.column("aj_t").to_numpy().astype(float), table.column("n").to_numpy().astype(float)
    out = []
    for classes, _ in (groups := scope_pool.same_members(members)):
        lo, hi = np.searchsorted(cls, classes, side="left"), np.searchsorted(cls, classes, side="right")
        take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)]) if len(classes) else np.zeros(0, np.int64)
        inc = incidence.cumulative_incidence(times[take], cause[take], len(names), float(jc.window_s), weights[take])
        out.append({name: {"estimate": r6(inc.estimate[i]), "lower": r6(inc.lower[i]), "upper": r6(inc.upper[i]),
                            "se": r6(inc.se()[i]), "events": int(inc.events[i])} for i, name in enumerate(names)})
    return scope_pool.spread(out, groups)


def horizon(journey_cfg: JourneyConfig) -> int:
    """Seconds after entering a state by which its step is resolved in an open journey; -1: only at window end.

    That is `inactive_for` (a gap that long ends the journey), unless self-loops are collapsed: a collapsed
    repeat keeps the state open without a visible step, so the step out of it may resolve much later.
    """
    gap = journeys.journey_inactive_for(journey_cfg)
    if gap is None or journey_cfg.collapse_self_loops or gap >= journey_cfg.window_s:
        return -1
    return int(gap)



ESTIMATORS = {
    "outcome_counts": "completed_only: journeys whose whole window lies inside the data",
    "transitions": "completed_only: every step of the completed journeys",
    "reach_counts": "completed_only", "paths": "completed_only", "durations": "completed_only",
    **snapshot_estimates.ESTIMATORS,
    "resolved_transitions": ("resolved_steps: steps of completed journeys, plus steps of open journeys entered at "
                             "least the drop-off horizon before the data end (destination-independent inclusion)"),
    "outcome_probabilities": ("aalen_johansen: P(outcome within the window | start), competing risks; open "
                              "journeys censored at data end - start; 95 % delta-method interval on the log(-log) scale"),
}


def estimates(g: dict[str, dict[int, Any]], sid: int, jc: JourneyConfig) -> dict[str, Any]:
    """The estimates that use journeys still in progress, how many journeys were in which state, and the estimators."""
    seen = g["observation"].get(sid, {})
    resolve = horizon(jc)
    return {
        "observation": {k: int(seen.get(k, 0)) for k in ("complete", "partial", "unobserved")},
        "resolution_horizon_s": resolve if resolve >= 0 else int(jc.window_s),
        "journey_window_s": int(jc.window_s),
        "resolved_transitions": [{"from": a, "to": b, "count": n} for a, b, n in sorted(g["resolved"].get(sid, []))],
        "outcome_probabilities": g["incidence"].get(sid, {}),
        "estimators": ESTIMATORS,
    }


def in_progress_json(p: Mapping[str, Any]) -> dict[str, Any]:
    """Estimates that use journeys still in progress, and which estimator made each number (absent on old payloads)."""
    if "resolved_transitions" not in p:
        return {}
    totals: dict[str, int] = {}
    for t in p["resolved_transitions"]:
        totals[t["from"]] = totals.get(t["from"], 0) + int(t["count"])
    return {
        "observation": dict(p["observation"]), "resolution_horizon_s": p["resolution_horizon_s"],
        "outcome_probabilities": p["outcome_probabilities"],
        "resolved_transitions": [{"from": t["from"], "to": t["to"], "count": t["count"],
                                  "probability": r6(t["count"] / totals[t["from"]])} for t in p["resolved_transitions"]],
        "estimators": dict(p["estimators"]),
        **{key: p[key] for key in snapshot_estimates.ESTIMATORS if key in p},
    }


# Each tenant's data end, the same rule engine.journeys censors by: the tenant's last event (or, without
# an events table, its last journey time); a caller-given data_end overrides it. The last journey time
# needs every step, so it is computed only when some tenant has no events (never after a pipeline run).
# Every tenant's last event is in its latest silver day file (engine.silver.recent_events): only the files from
# the earliest of those days on are read ({recent}), not every event (0.15 CPU-s at 10 M events).
_EVENTS_END = "(SELECT coalesce(tenant_id, '') AS tenant_id, max(ts) AS data_end FROM events {recent} GROUP BY ALL)"
_ENDS_FROM_EVENTS_SQL = """
CREATE OR REPLACE TEMP TABLE _jg_ends AS
SELECT j.tenant_id, coalesce($data_end::TIMESTAMP, e.data_end) AS data_end
FROM (SELECT DISTINCT coalesce(tenant_id, '') AS tenant_id FROM journeys WHERE journey = $journey) j
LEFT JOIN {events_end} e USING (tenant_id)
"""
_ENDS_SQL = """
CREATE OR REPLACE TEMP TABLE _jg_ends AS
SELECT j.tenant_id, coalesce($data_end::TIMESTAMP, {events}, j.last_ts) AS data_end
FROM (SELECT coalesce(jj.tenant_id, '') AS tenant_id, max(greatest(jj.end_ts, s.last_ts)) AS last_ts
      FROM journeys jj LEFT JOIN _jg_last s ON s.jix = jj.rowid
      WHERE jj.journey = $journey GROUP BY ALL) j
{events_join}
"""


def data_ends(con: Any, journey: str, data_end: datetime | None, steps: StepArrays) -> dict[str, datetime]:
    """Each tenant's data end; `steps` (the journey's StepArrays) give its journeys' last step times."""
    # `events` is a view over the silver Parquet files in a workspace (a table in older ones and in tests)
    has_events = bool(con.execute("""SELECT count(*) FROM (SELECT table_name AS name FROM duckdb_tables()
                                     UNION ALL SELECT view_name FROM duckdb_views()) WHERE name = 'events'""").fetchall()[0][0])
    params = {"data_end": data_end, "journey": journey}
    events_end = _EVENTS_END.format(recent=silver.recent_events(con) if has_events else "")
    if has_events:
        con.execute(_ENDS_FROM_EVENTS_SQL.format(events_end=events_end), params)
        if not con.execute("SELECT count(*) FROM _jg_ends WHERE data_end IS NULL").fetchall()[0][0]:
            return dict(con.execute("SELECT tenant_id, data_end FROM _jg_ends").fetchall())
    sql = _ENDS_SQL.format(events="e.data_end" if has_events else "NULL",
                           events_join=f"LEFT JOIN {events_end} e USING (tenant_id)" if has_events else "")
    jix, last = steps.last_ts()
    con.register("_jg_last", pa.table({"jix": jix, "last_ts": pa.array(last, pa.timestamp("us"), mask=last == NULL_TS)}))
    try:
        con.execute(sql, params)
    finally:
        con.unregister("_jg_last")
    return dict(con.execute("SELECT tenant_id, data_end FROM _jg_ends").fetchall())
