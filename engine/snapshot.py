"""Immutable snapshots: the counts of one (tenant, journey, scope), and the metrics they imply.

`build_snapshots` computes every scope of a journey at once. A journey belongs
to `all`, its `period`, one `segment` per segment key and `release_before` /
`release_after` of the releases it starts near; journeys with the same
(tenant, period, segment values, release sides) share every scope and form a
class. Everything is counted once per class (journeys, outcomes, and the steps
by `engine.step_counts`: transitions, reach, visits, repeats, paths) and summed
over the class's scopes; only medians and top paths look at single journeys.
Nothing loops over journeys or events in Python.

Scope rules (docs/contracts.md): journeys are assigned to periods by start
time, periods are aligned to Monday 1970-01-05 00:00 UTC (a 7d period is an ISO
week, 1d a calendar day), so a period's id never shifts as data is appended.
A period or release scope is `mature` when window end + journey window ≤
the tenant's data end (its last event: the rule engine.journeys censors by);
`all` and `segment` scopes span [first journey start, data end] and are always
`mature`. Censored journeys count in `journeys` and `censored`; the
completed-only numbers (outcome_counts, transitions, reach, paths, durations)
are over completed journeys. The in-progress estimates (engine.snapshot_progress:
`resolved_transitions`, Aalen–Johansen `outcome_probabilities`, `observation`)
use every journey for as long as it was observed; `estimators` names which
estimator made each number. Scopes without a single completed journey are
still built, so a period's snapshot always exists.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from engine import incremental, lifecycle_visits, memory, modelcheck, outcome_adjacent, paths, sealed_scopes, snapshot_estimates, step_arrays, step_counts
from engine import snapshot_progress as progress
from engine.arrow_scan import in_batches
from engine.config import Config, JourneyConfig
from engine.dbsettings import engine_settings
from engine.markov import ChainMetrics
from engine.snapshot_reader import SnapshotReader
from engine.step_arrays import NULL_TS
from ontology.model import canonical_json, content_id

log = logging.getLogger(__name__)
DECIMALS = 6
PERIOD_ORIGIN = "1970-01-05 00:00:00"  # a Monday


def r6(value: float | None) -> float | None:
    """Round for output: byte-identical JSON across runs and platforms."""
    if value is None:
        return None
    out = round(float(value), DECIMALS)
    return 0.0 if out == 0 else out


def iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    if not isinstance(ts, datetime):
        raise TypeError(f"timestamp {ts!r} is outside the range a snapshot can hold; quarantine it at ingest")
    return ts.replace(tzinfo=None).isoformat(timespec="microseconds" if ts.microsecond else "seconds") + "Z"


# ------------------------------------------------------------------------------------------
# Snapshot wrapper
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Snapshot(SnapshotReader):
    """One immutable snapshot. `payload` is the contract dict: read it, never mutate it."""

    payload_json: str = field(repr=False)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Snapshot:
        for key in ("snapshot_id", "journey", "states", "outcomes", "transitions", "start_state"):
            if key not in payload:
                raise ValueError(f"snapshot payload lacks {key!r}; build it with engine.snapshot.build_snapshots")
        return cls(canonical_json(payload))

    @cached_property
    def payload(self) -> dict[str, Any]:  # type: ignore[override]
        return json.loads(self.payload_json)

    def to_payload(self) -> dict[str, Any]:
        """A private copy the caller may change."""
        return json.loads(self.payload_json)

    def __repr__(self) -> str:
        return f"Snapshot({self.snapshot_id}, {self.journey}, {self.scope}, segment={self.segment}, release={self.release})"

    @cached_property
    def metrics(self) -> ChainMetrics:
        p = self.payload
        return ChainMetrics.from_counts(p["states"], p["outcomes"], self.counts, p["start_state"],
                                        p["conversion_outcome"], p["dropoff_outcome"])

    def to_metrics_json(self) -> dict[str, Any]:
        """DESIGN.md `snapshot --format json`: floats rounded to 6 decimals, fixed order."""
        p, m = self.payload, self.metrics
        return {
            "snapshot_id": p["snapshot_id"], "tenant_id": p.get("tenant_id", ""), "journey": p["journey"],
            "scope": p["scope"], "segment": p.get("segment"), "release": p.get("release"),
            "window": dict(p["window"]), "mature": p.get("mature", True),
            "journeys": p["journeys"], "completed": p["completed"], "censored": p["censored"],
            "start_state": p["start_state"], "outcomes": list(p["outcomes"]),
            "outcome_counts": dict(p["outcome_counts"]),
            "states": [self._state_json(s) for s in m.states],
            "transitions": [{"from": t["from"], "to": t["to"], "count": t["count"],
                             "probability": r6(m.probability(t["from"], t["to"]))} for t in p["transitions"]],
            **progress.in_progress_json(self.payload),
            "removal_effect_definitions": {
                "removal_effect": "paper: absolute, edges into and out of the state deleted, rows renormalised; B(start,o) - B'(start,o)",
                "removal_effect_relative": "classic: mass into the state redirected to the drop-off outcome; (B - B')/B",
            },
        }

    def _state_json(self, state: str) -> dict[str, Any]:
        m = self.metrics
        removable = state != m.start
        return {
            "state": state,
            "reach": r6(self.reach(state)),
            "visits_mean": r6(self.visits_mean(state)),
            "expected_visits": r6(m.expected_visits(state)),
            "exit_probability": r6(m.exit_probability(state)),
            "expected_steps": r6(float(m.expected_steps[m.states.index(state)])),
            "absorption": {o: r6(m.absorption(state, o)) for o in m.outcomes},
            "p_outcome_given_reached": {o: r6(self.p_outcome_given_reached(state, o)) for o in m.outcomes},
            "lift": {o: r6(self.lift(state, o)) for o in m.outcomes},
            "removal_effect": {o: r6(m.removal_effect(state, o)) if removable else None for o in m.outcomes},
            "removal_effect_relative": {o: r6(m.removal_effect_relative(state, o)) if removable else None for o in m.outcomes},
        }


# ------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------
# Journeys that share every scope form a class: same tenant, period, segment values, and releases they start
# just before or after. Counts are made per class and summed over each class's scopes (_jg_csid) instead of
# over one membership row per (journey, scope), and the scope rows come from the classes alone. A scope id
# is a hash of the scope's descriptors (internal only: payloads never show it). Each journey's class key is
# hashed once (`ckey`), so journeys find their class by an integer (a join on the strings and lists cost 0.22
# CPU-s at 10 M events); _jg_jclass is a view, not a copy of every journey's ids.
_CLASS_KEYS = "tenant_id, bucket, segvals, rel_before, rel_after"
# NULL where a key is NULL (no start time), as such a journey joins no class by the keys themselves either
_CLASS_HASH = f"CASE WHEN ({' AND '.join(k + ' IS NOT NULL' for k in _CLASS_KEYS.split(', '))}) THEN hash({_CLASS_KEYS}) END"
_CLASSES_SQL = (
    """CREATE OR REPLACE TEMP TABLE _jg_jkeys AS SELECT *, {class_hash} AS ckey FROM (
       SELECT tenant_id, jix, journey_id, actor_id, coalesce(outcome, $dropoff) AS outcome, censored, start_ts, end_ts,
              aj_t, aj_o, status, known_outcome, tracked, data_end,
              time_bucket(to_seconds($period), start_ts, $origin::TIMESTAMP) AS bucket,
              list_transform($keys::VARCHAR[], lambda k: coalesce(segments[k], '(none)')) AS segvals,
              list_filter(range(1, len($rel_at::TIMESTAMP[]) + 1), lambda i:
                          start_ts >= ($rel_at::TIMESTAMP[])[i] - to_seconds($rw) AND start_ts < ($rel_at::TIMESTAMP[])[i]) AS rel_before,
              list_filter(range(1, len($rel_at::TIMESTAMP[]) + 1), lambda i:
                          start_ts >= ($rel_at::TIMESTAMP[])[i] AND start_ts < ($rel_at::TIMESTAMP[])[i] + to_seconds($rw)) AS rel_after
       FROM ({observed}))""",
    """CREATE OR REPLACE TEMP TABLE _jg_classes AS
       SELECT row_number() OVER (ORDER BY tenant_id, bucket, segvals, rel_before, rel_after) AS cls, *
       FROM (SELECT DISTINCT ckey, tenant_id, bucket, segvals, rel_before, rel_after FROM _jg_jkeys)""",
    # joined on the hash when no two classes share one (else on the keys themselves: _class_join)
    """CREATE OR REPLACE TEMP VIEW _jg_jclass AS
       SELECT k.jix, k.journey_id, k.actor_id, k.outcome, k.censored, k.aj_t, k.aj_o, k.status, c.cls
       FROM _jg_jkeys k JOIN _jg_classes c USING ({class_join})""",
    """CREATE OR REPLACE TEMP TABLE _jg_cscopes AS
       WITH span AS (SELECT k.tenant_id, min(k.start_ts) AS first_ts, any_value(e.data_end) AS data_end
                     FROM _jg_jkeys k JOIN _jg_ends e USING (tenant_id) GROUP BY k.tenant_id),
       c AS (SELECT * FROM _jg_classes JOIN span USING (tenant_id)),
       keys AS (SELECT unnest($keys::VARCHAR[]) AS key, generate_subscripts($keys::VARCHAR[], 1) AS ki),
       m AS (
       SELECT cls, tenant_id, 'all' AS scope, '' AS seg_key, '' AS seg_value, '' AS release,
              first_ts AS w_start, data_end AS w_end FROM c
       UNION ALL
       SELECT cls, tenant_id, 'period', '', '', '', bucket, bucket + to_seconds($period) FROM c
       UNION ALL
       SELECT cls, tenant_id, 'segment', keys.key, c.segvals[keys.ki], '', first_ts, data_end FROM c CROSS JOIN keys
       UNION ALL
       SELECT cls, tenant_id, 'release_before', '', '', ($rel_names::VARCHAR[])[i], ($rel_at::TIMESTAMP[])[i] - to_seconds($rw),
              ($rel_at::TIMESTAMP[])[i] FROM (SELECT *, unnest(rel_before) AS i FROM c)
       UNION ALL
       SELECT cls, tenant_id, 'release_after', '', '', ($rel_names::VARCHAR[])[i], ($rel_at::TIMESTAMP[])[i],
              ($rel_at::TIMESTAMP[])[i] + to_seconds($rw) FROM (SELECT *, unnest(rel_after) AS i FROM c))
       SELECT hash(tenant_id, scope, seg_key, seg_value, release, w_start) AS sid, * FROM m""",
    """CREATE OR REPLACE TEMP TABLE _jg_csid AS SELECT DISTINCT cls, sid FROM _jg_cscopes""",
)

# what engine.step_counts needs of each journey (step_counts.journeys): _jg_jclass's rows, with the columns of
# _jg_jkeys it leaves out (read off its own join, not _jg_jclass joined back to _jg_jkeys: 0.2 -> 0.12 CPU-s)
_PER_JOURNEY = """(SELECT k.jix, c.cls, k.censored, k.outcome, k.journey_id, k.known_outcome, k.tracked, k.end_ts,
                          k.data_end FROM _jg_jkeys k JOIN _jg_classes c USING ({class_join}))"""

# scopes come out ordered by their descriptors
_SCOPES_SQL = """
SELECT sid, any_value(tenant_id) AS tenant_id, any_value(scope) AS scope, any_value(seg_key) AS seg_key,
       any_value(seg_value) AS seg_value, any_value(release) AS release, any_value(w_start) AS w_start,
       any_value(w_end) AS w_end
FROM _jg_cscopes GROUP BY sid ORDER BY tenant_id, scope, seg_key, seg_value, release, w_start
"""

# Distinct actors add up over classes when no actor has two completed journeys (engine.journeys makes one
# journey per actor); otherwise they are counted over every (journey, scope) pair.
_TOTALS_SQL = """
WITH per AS (SELECT cls, count(*) AS n, count(*) FILTER (censored) AS nc,
                    count(DISTINCT actor_id) FILTER (NOT censored) AS na FROM _jg_jclass GROUP BY cls)
SELECT cs.sid, sum(per.n)::BIGINT, sum(per.nc)::BIGINT, sum(per.na)::BIGINT FROM per JOIN _jg_csid cs USING (cls) GROUP BY cs.sid
"""
_TOTALS_EXACT_SQL = """
SELECT cs.sid, count(*), count(*) FILTER (censored), count(DISTINCT actor_id) FILTER (NOT censored)
FROM _jg_jclass k JOIN _jg_csid cs USING (cls) GROUP BY cs.sid
"""
_ACTOR_REPEATS_SQL = """
SELECT count(*) FROM (SELECT actor_id FROM _jg_jclass WHERE NOT censored GROUP BY actor_id HAVING count(*) > 1)
"""

# Per-class step counts (engine.step_counts) spread over each class's scopes; the model check reads _jg_trans.
_SPREAD_SQL = (
    """CREATE OR REPLACE TEMP TABLE _jg_trans AS
       SELECT cs.sid, c.prev, c.state, c.next, c.heldout, sum(c.c)::BIGINT AS c
       FROM _jg_ctrans c JOIN _jg_csid cs USING (cls) GROUP BY ALL""",
    """CREATE OR REPLACE TEMP TABLE _jg_rtrans AS
       WITH c AS (SELECT cls, state, next, c FROM _jg_ctrans UNION ALL SELECT cls, state, next, c FROM _jg_ptrans)
       SELECT cs.sid, c.state, c.next, sum(c.c)::BIGINT AS c FROM c JOIN _jg_csid cs USING (cls) GROUP BY ALL""",
    """CREATE OR REPLACE TEMP TABLE _jg_creach AS SELECT * FROM _jg_creach_arrow""",
    # a dropped journey's duration stops at its last step (last_ts: engine.step_arrays); its end_ts adds the
    # inactivity timeout (or the window)
    """CREATE OR REPLACE TEMP TABLE _jg_jour AS
       SELECT p.jix, p.cls, j.journey_id, j.actor_id, coalesce(j.outcome, $dropoff) AS outcome,
              epoch(CASE WHEN j.outcome IS NULL THEN NULL WHEN j.outcome = $dropoff THEN p.last_ts ELSE j.end_ts END
                    - j.start_ts) AS duration_s,
              p.length, p.path_id
       FROM journeys j JOIN _jg_paths p ON p.jix = j.rowid
       WHERE j.journey = $journey AND NOT j.censored""",
    """CREATE OR REPLACE TEMP TABLE _jg_cadj AS SELECT * FROM _jg_cadj_arrow""",
    """CREATE OR REPLACE TEMP TABLE _jg_path_names AS SELECT * FROM _jg_path_names_arrow""",
)

_QUERIES = {
    "scopes": _SCOPES_SQL,
    "totals": _TOTALS_SQL,
    "outcomes": """WITH per AS (SELECT cls, outcome, count(*) AS n FROM _jg_jclass WHERE NOT censored GROUP BY ALL)
                   SELECT cs.sid, per.outcome, sum(per.n)::BIGINT FROM per JOIN _jg_csid cs USING (cls) GROUP BY ALL""",
    "durations": """SELECT cs.sid, median(j.duration_s), median(j.length),
                           median(j.duration_s) FILTER (j.outcome = $conversion), median(j.length) FILTER (j.outcome = $conversion),
                           median(j.duration_s) FILTER (j.outcome <> $conversion), median(j.length) FILTER (j.outcome <> $conversion)
                    FROM _jg_jour j JOIN _jg_csid cs USING (cls) GROUP BY cs.sid""",
    "transitions": """SELECT sid, state, next, sum(c)::BIGINT FROM _jg_trans GROUP BY ALL""",
    "resolved": """SELECT sid, state, next, c FROM _jg_rtrans""",
    "observation": """WITH per AS (SELECT cls, status, count(*) AS n FROM _jg_jclass GROUP BY ALL)
                      SELECT cs.sid, per.status, sum(per.n)::BIGINT FROM per JOIN _jg_csid cs USING (cls) GROUP BY ALL""",
    "reach": """SELECT cs.sid, c.state, c.outcome, sum(c.reached)::BIGINT, sum(c.visits)::BIGINT, sum(c.repeats)::BIGINT
                FROM _jg_creach c JOIN _jg_csid cs USING (cls) GROUP BY ALL""",
    "adjacent": outcome_adjacent.COUNTS_SQL,
}
# the queries over the classes alone (run while the step counts are made), and those over the counts' tables
_CLASS_QUERIES = ("scopes", "totals", "outcomes", "observation")
_STEP_QUERIES = tuple(name for name in _QUERIES if name not in _CLASS_QUERIES)


def build_snapshots(con: Any, cfg: Config, journey_cfg: JourneyConfig, input_hash: str, engine_version: str,
                    *, data_end: datetime | None = None) -> list[Snapshot]:
    """Every snapshot of one journey (all tenants), ordered by (tenant, scope, segment, release, window).

    `data_end` defaults to each tenant's last event, as engine.journeys uses for censoring.
    """
    params = _params(cfg, journey_cfg)
    base = {"input_hash": input_hash, "config_hash": cfg.config_hash, "engine_version": engine_version}
    try:
        with engine_settings(con):  # a memory limit, so 10 M events' scope tables spill instead of growing the process
            with _stage("fetch"):
                steps = step_arrays.fetch(con, journey_cfg.name)
            with step_arrays.shared(con, journey_cfg.name, steps):
                with _stage("data_ends"):
                    ends = progress.data_ends(con, journey_cfg.name, data_end, steps)
                rows, tops, checks, incidence, sealed, cls = _count(con, cfg, journey_cfg, params, steps, base)
                with _stage("estimate_inputs"):
                    snapshot_estimates.prepare(con, journey_cfg.name, journey_cfg.dropoff_outcome, cls)
                    _drop(con, keep=("_jg_est", "_jg_csid"))  # counted: their memory goes before the arrays come
                    inputs = snapshot_estimates.Inputs(con, journey_cfg, params)
            del steps  # the estimates hold what they need of the steps: the arrays go before their peak
            _drop(con)  # the estimates' tables too (in memory, and the peak is next)
            memory.give_back()
            with _stage("estimates"):
                estimates = snapshot_estimates.by_scope(inputs, journey_cfg, params, cfg.snapshots.top_paths)
            del inputs
    finally:
        _drop(con)
    by_sid = _group(rows, incidence)
    by_sid["estimates"] = estimates
    incremental.add_counts(con, {"snapshots_sealed": len(sealed.keys), "snapshots_reused": len(sealed.stored)})
    out = []
    for scope in rows["scopes"]:
        sid = scope[0]
        if sid in sealed.stored:
            payload = sealed_scopes.restamp(sealed.stored[sid], base)
        else:
            payload = _payload(scope, by_sid, tops, checks, journey_cfg, base, ends[scope[1]])
            if sid in sealed.keys:
                payload["sealed_key"] = sealed.keys[sid]
        out.append(Snapshot.from_payload(payload))
    return out


def _count(con: Any, cfg: Config, jc: JourneyConfig, params: dict[str, Any], steps: step_arrays.StepArrays,
           base: Mapping[str, Any]) -> tuple[dict[str, list[tuple]], dict, dict, dict[int, dict[str, Any]],
                                             sealed_scopes.Sealed, np.ndarray]:
    """All counting SQL and the outcome incidence per scope, except for sealed scopes whose stored snapshot is
    reused (engine.sealed_scopes), and each journey's class by jix (-1: none); each stage's time is logged at
    debug level.

    The step counts (engine.step_counts, engine.outcome_adjacent: numpy on the step arrays and the per-journey
    arrays, no connection) are made on a second thread while this one runs the SQL that does not read them:
    the sealed-scope digests, the per-class queries and the incidence. DuckDB and numpy both release the GIL,
    so the two cores work at once (the build ran them one after the other, one core idle). The counts are
    spread over the scopes only once both are done; an error on either side fails the build."""
    with _stage("classes"):
        progress.observed(con, jc)
        for sql in _CLASSES_SQL:
            if "{class_join}" in sql:
                sql = sql.replace("{class_join}", _class_join(con))
            sql = sql.replace("{observed}", progress.OBSERVED_SQL).replace("{class_hash}", _CLASS_HASH)
            con.execute(sql, _bind(sql, params))
    with _stage("step_journeys"):
        journeys = step_counts.journeys(con, _PER_JOURNEY.replace("{class_join}", _class_join(con)), steps.size)
    rows: dict[str, list[tuple]] = {}
    with ThreadPoolExecutor(1, thread_name_prefix="jg-step-counts") as pool:  # leaving waits for the thread
        counting = pool.submit(_step_tables, steps, journeys, jc.dropoff_outcome, params)
        with _stage("sealed"):
            sealed = sealed_scopes.find(con, steps, jc.window_s, base, jc.name, lifecycle_visits.present(con))
            if sealed.stored:  # reused as stored: counted nowhere below
                con.execute("DELETE FROM _jg_csid WHERE list_contains(?, sid)", [sorted(sealed.stored)])
        _run_queries(con, params, rows, _CLASS_QUERIES)
        with _stage("lifecycle_visits"):
            rows["lifecycle"] = lifecycle_visits.counts(con, jc.name) if lifecycle_visits.present(con) else []
        with _stage("incidence"):
            incidence = progress.incidence_by_scope(con, jc)
        with _stage("steps_wait"):
            tables = counting.result()
    with _stage("steps"):
        _spread(con, tables, params)
    del tables, counting
    _run_queries(con, params, rows, _STEP_QUERIES)
    with _stage("paths"):
        tops = paths.top_paths(con, "_jg_jour", "_jg_path_names", "_jg_csid", cfg.snapshots.top_paths, jc.conversion_outcome)
    with _stage("model_check"):
        checks = modelcheck.model_checks(con, "_jg_trans")
    return rows, tops, checks, incidence, sealed, np.where(journeys.counted, journeys.cls, -1)


def _run_queries(con: Any, params: dict[str, Any], rows: dict[str, list[tuple]], names: tuple[str, ...]) -> None:
    """The named _QUERIES' rows into `rows` (totals counted exactly when an actor has two completed journeys)."""
    for name in names:
        with _stage(name):
            sql = _QUERIES[name]
            if name == "totals" and con.execute(_ACTOR_REPEATS_SQL).fetchall()[0][0] > 0:
                sql = _TOTALS_EXACT_SQL
            rows[name] = con.execute(sql, _bind(sql, params)).fetchall()


def _step_tables(steps: step_arrays.StepArrays, journeys: step_counts.Journeys, dropoff: str,
                 params: dict[str, Any]) -> dict[str, pa.Table]:
    """The per-class step counts as the Arrow tables `_spread` registers (numpy only: it runs beside the SQL)."""
    with _stage("step_counts"):
        counts = step_counts.count_steps(steps, journeys, params["collapse"])
        partial = step_counts.count_partial_steps(steps, journeys, params["horizon"] if params["horizon"] >= 0 else None)
        adjacent = outcome_adjacent.class_counts(steps, journeys, dropoff)
        jix, last = steps.last_ts()
        last_ts = np.full(steps.size, NULL_TS, dtype=np.int64)
        last_ts[jix] = last
        path_last = last_ts[counts.paths.column("jix").to_numpy()]
        with_last = counts.paths.append_column("last_ts", pa.array(path_last, pa.timestamp("us"), mask=path_last == NULL_TS))
        names = pa.table({"path_id": np.arange(len(counts.path_names), dtype=np.int64), "path": counts.path_names})
        return {name: in_batches(table) for name, table in (
            ("_jg_ctrans", counts.transitions), ("_jg_creach_arrow", counts.reach), ("_jg_paths", with_last),
            ("_jg_ptrans", partial), ("_jg_cadj_arrow", adjacent), ("_jg_path_names_arrow", names))}


def _class_join(con: Any) -> str:
    """What journeys find their class by: the class key's hash, unless two classes share one."""
    unique = con.execute("SELECT count(DISTINCT ckey) = count(*) FROM _jg_classes").fetchall()[0][0]
    return "ckey" if unique else _CLASS_KEYS


_TEMP_TABLES = ("_jg_rtrans", "_jg_ends", "_jg_jkeys", "_jg_classes", "_jg_cscopes", "_jg_csid",
                "_jg_trans", "_jg_creach", "_jg_jour", "_jg_path_names", "_jg_cadj", "_jg_est")


def _drop(con: Any, keep: tuple[str, ...] = ()) -> None:
    """Drop the build's temp tables (but `keep`) and view."""
    con.execute("DROP VIEW IF EXISTS _jg_progress")
    con.execute("DROP VIEW IF EXISTS _jg_jclass")
    for table in _TEMP_TABLES:
        if table not in keep:
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _bind(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The named parameters a statement uses (DuckDB refuses unused ones)."""
    return {name: value for name, value in params.items() if f"${name}" in sql}


def _spread(con: Any, tables: dict[str, pa.Table], params: dict[str, Any]) -> None:
    """The per-class counts (`_step_tables`) as the temp tables the scope queries read."""
    for name, table in tables.items():
        con.register(name, table)
    try:
        for sql in _SPREAD_SQL:
            con.execute(sql, _bind(sql, params))
    finally:
        for name in tables:
            con.unregister(name)


@contextmanager
def _stage(name: str) -> Iterator[None]:
    started, cpu = time.perf_counter(), time.process_time()
    yield
    log.debug("snapshot stage %s: %.3f s (cpu %.3f s)", name, time.perf_counter() - started, time.process_time() - cpu)


def _params(cfg: Config, journey_cfg: JourneyConfig) -> dict[str, Any]:
    releases = sorted(cfg.releases, key=lambda r: (r.at, r.name))
    return {
        "journey": journey_cfg.name, "period": cfg.snapshots.period_s, "origin": PERIOD_ORIGIN,
        "keys": [s.key for s in cfg.segments], "rel_names": [r.name for r in releases],
        "rel_at": [datetime.strptime(r.at, "%Y-%m-%dT%H:%M:%SZ") for r in releases],
        "rw": cfg.snapshots.release_window_s or cfg.snapshots.period_s,
        "dropoff": journey_cfg.dropoff_outcome, "collapse": bool(journey_cfg.collapse_self_loops),
        "conversion": journey_cfg.conversion_outcome, "horizon": progress.horizon(journey_cfg),
    }


def _group(rows: dict[str, list[tuple]], incidence: dict[int, dict[str, Any]]) -> dict[str, dict[int, Any]]:
    """Index the grouped rows (and the per-scope incidence) by scope id."""
    out: dict[str, dict[int, Any]] = {"totals": {}, "durations": {}, "outcomes": {}, "transitions": {}, "reach": {},
                                      "adjacent": {}, "lifecycle": {}, "resolved": {}, "observation": {},
                                      "incidence": incidence}
    for sid, journeys, censored, actors in rows["totals"]:
        out["totals"][sid] = (journeys, censored, actors)
    for sid, *medians in rows["durations"]:
        out["durations"][sid] = tuple(medians)
    for sid, *row in rows["lifecycle"]:
        out["lifecycle"].setdefault(sid, []).append(tuple(row))
    for sid, state, outcome, n in rows["adjacent"]:
        out["adjacent"].setdefault(sid, {}).setdefault(state, {})[outcome] = int(n)
    for sid, outcome, n in rows["outcomes"]:
        out["outcomes"].setdefault(sid, {})[outcome] = n
    for sid, src, dst, n in rows["transitions"]:
        out["transitions"].setdefault(sid, []).append((src, dst, n))
    for sid, src, dst, n in rows["resolved"]:
        out["resolved"].setdefault(sid, []).append((src, dst, n))
    for sid, status, n in rows["observation"]:
        out["observation"].setdefault(sid, {})[status] = n
    for reach_row in rows["reach"]:
        out["reach"].setdefault(reach_row[0], []).append(reach_row[1:])
    return out


def _reach_maps(reach_rows: list[tuple]) -> dict[str, Any]:
    maps: dict[str, Any] = {"reach_counts": {}, "reach_outcome_counts": {}, "visit_counts": {},
                            "repeat_counts": {}, "repeat_outcome_counts": {}}
    for state, outcome, reached, visits, repeats in sorted(reach_rows):
        maps["reach_counts"][state] = maps["reach_counts"].get(state, 0) + reached
        maps["reach_outcome_counts"].setdefault(state, {})[outcome] = reached
        maps["visit_counts"][state] = maps["visit_counts"].get(state, 0) + visits
        maps["repeat_counts"][state] = maps["repeat_counts"].get(state, 0) + repeats
        maps["repeat_outcome_counts"].setdefault(state, {})[outcome] = repeats
    return maps


def snapshot_identity(base: Mapping[str, Any], tenant_id: str, journey: str, scope: str,
                      window: Mapping[str, Any], segment: Any, release: str | None) -> str:
    """Content hash over what defines a snapshot; the same input and config give the same id."""
    return content_id("snapshot", {**base, "tenant_id": tenant_id, "journey": journey, "scope": scope,
                                   "window": window, "segment": segment, "release": release})


def _payload(scope_row: tuple, g: dict[str, dict[int, Any]], tops: dict[int, Any], checks: dict[int, Any],
             jc: JourneyConfig, base: Mapping[str, Any], data_end: datetime) -> dict[str, Any]:
    sid, tenant, scope, seg_key, seg_value, release, w_start, w_end = scope_row
    release = release or None  # '' stands for "none" inside SQL, so scope keys join without NULLs
    journeys, censored, actors = g["totals"][sid]
    transitions = sorted(g["transitions"].get(sid, []))
    outcome_counts = dict(sorted(g["outcomes"].get(sid, {}).items()))
    states = sorted({jc.start} | {t[0] for t in transitions})
    outcomes = sorted(set(jc.outcome_names) | set(outcome_counts) | {t[1] for t in transitions if t[1] not in states})
    med_s, med_len, conv_s, conv_len, loss_s, loss_len = g["durations"].get(sid, (None,) * 6)
    window = {"start": iso(w_start), "end": iso(w_end)}
    segment = {"key": seg_key, "value": seg_value} if scope == "segment" else None
    mature = scope in ("all", "segment") or (data_end - w_end).total_seconds() >= jc.window_s
    completed = journeys - censored
    payload = {
        "snapshot_id": snapshot_identity(base, tenant, jc.name, scope, window, segment, release),
        "tenant_id": tenant, "journey": jc.name, "level": jc.level, "scope": scope, "segment": segment,
        "release": release, "window": window, "mature": bool(mature), "start_state": jc.start,
        "conversion_outcome": jc.conversion_outcome, "dropoff_outcome": jc.dropoff_outcome,
        "states": states, "outcomes": outcomes, "journeys": journeys, "completed": completed,
        "censored": censored, "actors": actors, "outcome_counts": outcome_counts,
        "transitions": [{"from": a, "to": b, "count": n} for a, b, n in transitions],
        **_reach_maps(g["reach"].get(sid, [])),
        "durations": {"median_s": r6(med_s), "median_length": r6(med_len),
                      "by_class": {"converted": {"median_s": r6(conv_s), "median_length": r6(conv_len)},
                                   "lost": {"median_s": r6(loss_s), "median_length": r6(loss_len)}}},
        "outcome_adjacent": outcome_adjacent.payload_block(g["adjacent"].get(sid, {})),
        "paths": tops.get(sid, paths.empty_paths(completed)),
        "model_check": checks.get(sid, modelcheck.empty_check()),
        "collapse_self_loops": bool(jc.collapse_self_loops),
        **progress.estimates(g, sid, jc),
        **base,
    }
    payload |= snapshot_estimates.payload_blocks(g["estimates"], sid, censored, payload["durations"])
    if sid in g["lifecycle"]:
        payload["lifecycle_visits"] = lifecycle_visits.payload_block(g["lifecycle"][sid])
    return payload

