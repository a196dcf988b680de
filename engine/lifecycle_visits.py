"""Visits that count lifecycle variants of one activity once (XES ``lifecycle:transition``).

A process-mining log writes one work item as several events of the same
activity: SCHEDULE, START, COMPLETE (BPI 2012's W_ items). At the raw level
each is a step with the same state, so "visits" would count lifecycle events,
not returns. Here a step of a state opens a new visit unless the previous step
of the same state in the journey left an instance open (its lifecycle is not
terminal) and this step is not a new SCHEDULE. Steps without a lifecycle value
each count as a visit, as before. Computed only when the log carries
``lifecycle_transition`` (checked on its first rows), so other data pays
nothing; the snapshot then holds `lifecycle_visits` (visit, repeat and
repeat-by-outcome counts) next to the plain ones, and detectors.repeated_visit
uses them unless told not to.
"""

from __future__ import annotations

from typing import Any

KEY = "$.lifecycle_transition"  # engine.xes writes lifecycle:transition under this property
TERMINAL = ("complete", "ate_abort", "pi_abort", "withdraw", "autoskip", "manualskip")  # IEEE 1849 closing transitions
PROBE_ROWS = 1000

_PROBE_SQL = f"""SELECT count(*) FROM (SELECT properties FROM events LIMIT {PROBE_ROWS})
                 WHERE json_extract_string(properties, '{KEY}') IS NOT NULL"""

_TERMINAL = ", ".join(f"'{t}'" for t in TERMINAL)
# A step opens a new visit of its state (`lc`: its lifecycle, `prev`: the state's previous step's): also read by
# engine.state_estimates, which counts the same visits per journey
NEW_VISIT = f"prev IS NULL OR lc IS NULL OR lc = 'schedule' OR prev IN ({_TERMINAL})"
COUNTS_SQL = f"""
WITH st AS (SELECT s.journey_id, s.step, s.state, lower(json_extract_string(e.properties, '{KEY}')) AS lc
            FROM journey_steps s JOIN journeys j ON j.journey = s.journey AND j.journey_id = s.journey_id
            JOIN events e ON e.tenant_id = coalesce(j.tenant_id, '') AND e.event_id = s.event_id
            WHERE s.journey = $journey AND s.state IS NOT NULL AND NOT j.censored),
m AS (SELECT *, lag(lc) OVER (PARTITION BY journey_id, state ORDER BY step) AS prev FROM st),
v AS (SELECT journey_id, state,
             count(*) FILTER ({NEW_VISIT}) AS visits
      FROM m GROUP BY ALL),
per AS (SELECT c.cls, v.state, c.outcome, sum(v.visits) AS visits, count(*) FILTER (v.visits >= 2) AS repeats
        FROM v JOIN _jg_jclass c USING (journey_id) GROUP BY ALL)
SELECT cs.sid, per.state, per.outcome, sum(per.visits)::BIGINT, sum(per.repeats)::BIGINT
FROM per JOIN _jg_csid cs USING (cls) GROUP BY ALL
"""


def present(con: Any) -> bool:
    """Whether the events carry a lifecycle transition (the first PROBE_ROWS rows are looked at)."""
    found = con.execute("SELECT count(*) FROM duckdb_columns() WHERE table_name = 'events' "
                        "AND column_name = 'properties'").fetchall()[0][0]
    return bool(found) and bool(con.execute(_PROBE_SQL).fetchall()[0][0])


def counts(con: Any, journey: str) -> list[tuple]:
    """(scope id, state, outcome, visits, journeys visiting twice or more), lifecycle variants merged."""
    return con.execute(COUNTS_SQL, {"journey": journey}).fetchall()


def payload_block(rows: list[tuple]) -> dict[str, Any]:
    """One scope's rows as the snapshot's `lifecycle_visits` block (sorted, deterministic)."""
    visits: dict[str, int] = {}
    repeats: dict[str, int] = {}
    repeat_outcome: dict[str, dict[str, int]] = {}
    for state, outcome, n_visits, n_repeats in sorted(rows):
        visits[state] = visits.get(state, 0) + int(n_visits)
        repeats[state] = repeats.get(state, 0) + int(n_repeats)
        repeat_outcome.setdefault(state, {})[outcome] = int(n_repeats)
    return {"visit_counts": visits, "repeat_counts": repeats, "repeat_outcome_counts": repeat_outcome}
