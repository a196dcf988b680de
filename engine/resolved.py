"""A second, plain-SQL count of one scope's in-progress estimates, from the journey tables alone.

engine.snapshot computes `resolved_transitions`, `observation` and
`outcome_probabilities` for every scope at once (classes, numpy); this module
recomputes them for one scope, journey by journey, straight from `journeys`,
`journey_steps` and `journey_progress`, so narrator.recompute can check a
stored number against the raw tables and tests can check the fast path
against the slow one. The rules are the snapshot's (engine.snapshot,
engine.step_counts, engine.journeys):

* a step counts when its journey is complete (not censored), or when the
  journey is censored, tracked in journey_progress, and the step was entered
  at least `resolution_horizon_s` before the data end; its destination is the
  next step, else the journey's outcome (known outcome for a censored one);
* a journey's incidence row is (end − start, outcome) when its outcome is
  known by the data end, else (data end − start, censored);
* complete / partial / unobserved as engine.snapshot defines them;
* reach: each (journey, state)'s first visit from journey_steps, the first-entry
  incidence of engine.snapshot_estimates over those and the incidence rows;
* `resolved_shares` and `loss_estimates`: engine.step_shares' STEPS_SQL over the scope's journeys, then the
  snapshot's own functions on those rows.
* state_estimates: visits per (journey, state) by SQL, engine.state_estimates' numbers over them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine import incidence, loss_estimates, path_estimate_totals, state_estimates, step_shares

_SCOPE_CTE = """
sc AS (SELECT j.journey_id, j.censored, j.start_ts, j.end_ts, coalesce(j.outcome, ?) AS outcome,
              p.known_outcome, p.known_end_ts, p.data_end, p.journey_id IS NOT NULL AS tracked
       FROM journeys j LEFT JOIN journey_progress p ON p.journey = j.journey AND p.journey_id = j.journey_id
       WHERE {where})"""

_RESOLVED_SQL = """
WITH {scope},
raw AS (SELECT s.journey_id, s.step, s.state, s.ts, lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
        FROM journey_steps s JOIN sc USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL),
st AS (SELECT journey_id, state, ts, lead(state) OVER (PARTITION BY journey_id ORDER BY step) AS nxt
       FROM raw WHERE NOT ? OR prev IS NULL OR prev <> state)
SELECT st.state, coalesce(st.nxt, CASE WHEN sc.censored THEN sc.known_outcome ELSE sc.outcome END) AS dst, count(*)
FROM st JOIN sc USING (journey_id)
WHERE NOT sc.censored OR (sc.tracked AND ? >= 0 AND st.ts + to_seconds(greatest(?, 0)) <= sc.data_end)
GROUP BY ALL ORDER BY ALL
"""

_JOURNEYS_SQL = """
WITH {scope},
k AS (SELECT *, CASE WHEN NOT censored THEN end_ts WHEN known_end_ts <= data_end THEN known_end_ts END AS end_k
      FROM sc)
SELECT journey_id, censored, greatest(epoch(coalesce(end_k, data_end) - start_ts), 0)::DOUBLE AS t,
       CASE WHEN NOT censored THEN outcome WHEN end_k IS NOT NULL THEN known_outcome END AS o,
       CASE WHEN end_k IS NOT NULL THEN 'complete'
            WHEN tracked AND ? >= 0 AND start_ts + to_seconds(greatest(?, 0)) <= data_end THEN 'partial'
            ELSE 'unobserved' END AS status
FROM k ORDER BY t, o NULLS FIRST, journey_id
"""
# The scope's journeys as engine.step_shares reads them. A complete journey's follow-up only matters as
# "at least the window" (every weight's time is at most the window), so it is set to the window.
_SHARE_ROWS_SQL = """
CREATE OR REPLACE TEMP TABLE _jg_rc AS
WITH {scope}
SELECT (row_number() OVER (ORDER BY journey_id) - 1)::BIGINT AS jrow, journey_id, start_ts, censored, tracked, data_end,
       CASE WHEN NOT censored THEN outcome WHEN known_end_ts <= data_end THEN known_outcome END AS dest_o,
       CASE WHEN censored THEN greatest(epoch(data_end - start_ts), 0) ELSE ? END::DOUBLE AS follow,
       CASE WHEN NOT censored THEN epoch(end_ts - start_ts)
            WHEN known_end_ts <= data_end THEN epoch(known_end_ts - start_ts) END::DOUBLE AS known_t
FROM sc
"""
_VISITS_SQL = """
WITH {scope}
SELECT s.journey_id, s.state, greatest(epoch(min(s.ts) - any_value(sc.start_ts)), 0)::DOUBLE
FROM journey_steps s JOIN sc USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL
GROUP BY ALL ORDER BY ALL
"""


def recount_in_progress(con: Any, where: str, params: Sequence[Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """`resolved_transitions`, `observation`, `outcome_probabilities`, `reach_estimates`, `resolved_shares`,
    `loss_estimates`, `state_estimates`, `path_estimates` and `duration_estimates` (engine.path_estimate_totals)
    of one scope (payload-shaped, rounded).

    `where`/`params` select the scope's journeys over `journeys j` (narrator.recompute.scope_where);
    `payload` gives the journey, drop-off outcome, collapse flag, horizon and outcome names.
    """
    from engine.snapshot import r6

    window_s = float(payload["journey_window_s"])
    horizon = int(payload.get("resolution_horizon_s", -1))
    horizon = horizon if horizon < window_s else -1
    dropoff, journey = payload["dropoff_outcome"], payload["journey"]
    scope = _SCOPE_CTE.format(where=where)
    rows = con.execute(_RESOLVED_SQL.format(scope=scope),
                       [dropoff, *params, journey, bool(payload.get("collapse_self_loops")), horizon, horizon]).fetchall()
    per = con.execute(_JOURNEYS_SQL.format(scope=scope), [dropoff, *params, horizon, horizon]).fetchall()
    names = sorted(set(payload.get("outcomes", [])) | {str(o) for *_, o, _ in per if o is not None})
    code = {name: i for i, name in enumerate(names)}
    times = np.array([t for _, _, t, _, _ in per], dtype=float)
    causes = np.array([-1 if o is None else code[str(o)] for *_, o, _ in per], dtype=np.int64)
    inc = incidence.cumulative_incidence(times, causes, len(names), float(window_s))
    seen = {k: sum(1 for *_, s in per if s == k) for k in ("complete", "partial", "unobserved")}
    visits = con.execute(_VISITS_SQL.format(scope=scope), [dropoff, *params, journey]).fetchall()
    return {
        "reach_estimates": _reach(per, visits, float(window_s)),
        **_shares(con, scope, [dropoff, *params, window_s], payload, horizon),
        "estimate_horizon_s": _horizon(con, scope, [dropoff, *params], window_s),
        **path_estimate_totals.recount(con, scope, [dropoff, *params], payload),
        "resolved_transitions": [{"from": a, "to": b, "count": int(n)} for a, b, n in rows],
        "observation": seen,
        "outcome_probabilities": {
            name: {"estimate": r6(inc.estimate[i]), "lower": r6(inc.lower[i]), "upper": r6(inc.upper[i]),
                   "se": r6(inc.se()[i]), "events": int(inc.events[i])} for i, name in enumerate(names)},
    }


def _reach(per: list[tuple], visits: list[tuple], window_s: float) -> dict[str, Any]:
    """`reach_estimates` journey by journey: first visits from journey_steps, ends from the incidence rows."""
    from engine.snapshot_estimates import reach_estimate

    row = {jid: i for i, (jid, *_) in enumerate(per)}
    t_end = np.array([t for _, _, t, _, _ in per], dtype=float)
    ended = np.array([o is not None for *_, o, _ in per], dtype=bool)
    censored = any(c for _, c, *_ in per)
    by_state: dict[str, list[tuple[int, float]]] = {}
    for jid, state, t in visits:
        by_state.setdefault(str(state), []).append((row[jid], float(t)))
    return {state: reach_estimate(t_end, ended, censored, np.array([i for i, _ in hits], dtype=np.int64),
                                  np.array([t for _, t in hits], dtype=float), window_s)
            for state, hits in sorted(by_state.items())}


def _shares(con: Any, scope: str, params: list[Any], payload: Mapping[str, Any], horizon: int) -> dict[str, Any]:
    """`resolved_shares`, `loss_estimates` and `state_estimates` of the scope (engine.step_shares,
    engine.loss_estimates, engine.state_estimates over the scope's journeys alone)."""
    con.execute(_SHARE_ROWS_SQL.format(scope=scope), params)
    try:
        steps = step_shares.Steps.query(con, "_jg_rc", {"journey": payload["journey"], "horizon": horizon,
                                                        "collapse": bool(payload.get("collapse_self_loops"))})
        follow = np.array([r[0] for r in con.execute("SELECT follow FROM _jg_rc ORDER BY jrow").fetchall()], dtype=float)
        window_s = float(payload["journey_window_s"])
        done = step_shares.counted(steps, np.arange(len(steps.row)), steps.row, follow, window_s, horizon)
        losses = [o for o in payload.get("outcomes", []) if o != payload["conversion_outcome"]]
        return {"resolved_shares": step_shares.shares(steps, done.pick, done.pos, follow, window_s, horizon, done),
                "loss_estimates": loss_estimates.block(steps, done, follow, window_s, horizon, losses),
                "state_estimates": state_estimates.recount(con, "_jg_rc", payload)}
    finally:
        con.execute("DROP TABLE IF EXISTS _jg_rc")


_FOLLOW_SQL = """
WITH {scope}
SELECT CASE WHEN bool_or(NOT censored) THEN ? ELSE max(greatest(epoch(data_end - start_ts), 0)) END::DOUBLE FROM sc
"""


def _horizon(con: Any, scope: str, params: list[Any], window_s: float) -> int:
    """engine.snapshot_estimates.horizon_reached over the scope (a complete journey counts as the window)."""
    from engine.snapshot_estimates import horizon_reached

    longest = con.execute(_FOLLOW_SQL.format(scope=scope), [*params, window_s]).fetchall()[0][0]
    return horizon_reached(np.array([] if longest is None else [longest], dtype=float), window_s)
