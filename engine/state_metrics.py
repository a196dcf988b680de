"""Per-state chain metrics of a snapshot, computed once at run time and stored beside it.

Why: `snapshot`, `/api/graph` and the web page used to solve the chain on every
request, and the paper's removal effect costs one chain solve per state, so a
workspace with thousands of raw event names (URLs, screen ids) took minutes per
page view (issue #18 defect 5). The run now computes `snapshot --format json`
once per snapshot and stores it in the `state_metrics` table, keyed by snapshot
id and `METRICS_VERSION`. Snapshots themselves stay immutable and
content-addressed: nothing here touches their payload or id. A snapshot without
stored metrics (an older workspace, or one above `STORE_MAX_SECONDS` of estimated
work) is computed on demand, within the caller's work cap.

Above `CANDIDATE_FILTER_STATES` states the chain is solved sparse (engine.markov_sparse: one LU of
the sparse I − Q, no n × n matrix; 5,000 states in about a second where the dense solve took 37 s),
so a run stores metrics at any size; at or below it the dense chain, byte for byte as before.

Candidate filter (paper-notes.md: "compute it for candidates only when |S| is
large"): above `CANDIDATE_FILTER_STATES` states the paper's removal effect is
solved only for candidate states, the activation driver's pre-filter on reach ×
lift × n: a state is a candidate when at least `MIN_N` completed journeys reach
it and its lift on the conversion outcome is at least `MIN_LIFT` (or undefined
because nobody converts without it), ranked by reach × lift × n, at most
`MAX_CANDIDATES`. Every other state gets `removal_effect` null and
`removal_effect_status` "not computed (below the candidate filter)"; the
classic relative effect is a closed form from N and stays complete. At or below
the threshold every state is computed, so small snapshots read exactly as before.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from typing import Any

from engine.snapshot import Snapshot
from ontology.errors import EngineError

log = logging.getLogger(__name__)
METRICS_VERSION = 1
STORE_MAX_SECONDS = 60.0  # a run stores no metrics for a snapshot estimated above this (about 3,900 states)
CANDIDATE_FILTER_STATES = 500  # above this many states, removal effects for candidates only
MIN_N = 30                     # τ_n: completed journeys reaching a candidate
MIN_LIFT = 1.0                 # τ_lift: a candidate is at least as often followed by conversion when reached
MAX_CANDIDATES = 200
NOT_COMPUTED = "not computed (below the candidate filter)"
LU_UNITS_PER_S = 1e9   # states³ per second of one dense LU solve of I − Q on this 2-core box (500 states: 0.1 s)
STATE_OVERHEAD_S = 2e-4  # Python work per state (JSON, predecessor solve), measured at 2,000 states
SPARSE_REMOVAL_S = 5e-3  # one candidate's removal effect on the sparse chain (5,000 states: 4 ms)

SCHEMA_SQL = """CREATE TABLE IF NOT EXISTS state_metrics(snapshot_id VARCHAR, metrics_version INTEGER, metrics JSON,
  PRIMARY KEY (snapshot_id, metrics_version))"""


def candidates(snap: Snapshot, *, min_n: int = MIN_N, min_lift: float = MIN_LIFT,
               limit: int = MAX_CANDIDATES) -> list[str]:
    """The states whose paper removal effect is solved in a large snapshot (module docstring), best first."""
    m = snap.metrics
    conv = m.conversion_outcome
    scored = []
    for state in m.states:
        n = snap.payload.get("reach_counts", {}).get(state, 0)
        if state == m.start or n < min_n:
            continue
        lift = snap.lift(state, conv)
        if lift is None and (snap.p_outcome_given_reached(state, conv) or 0) > 0:
            lift = math.inf  # nobody converts without it: necessary, ranked first
        if lift is not None and lift >= min_lift:
            scored.append((-(snap.reach(state) * lift * n), state))
    return [s for _, s in sorted(scored)[:limit]]


def compute(snap: Snapshot, *, filter_above: int = CANDIDATE_FILTER_STATES, **candidate_options: Any) -> dict[str, Any]:
    """`snapshot --format json` for one snapshot, with the candidate filter above `filter_above` states."""
    if len(snap.payload["states"]) <= filter_above:
        return snap.to_metrics_json()
    snap = _sparse(snap)
    m = snap.metrics
    chosen = candidates(snap, **candidate_options)
    m.limit_removal_to(chosen)
    data = snap.to_metrics_json()
    keep = set(chosen) | {m.start}
    for row in data["states"]:
        if row["state"] not in keep:
            row["removal_effect"] = {o: None for o in m.outcomes}
            row["removal_effect_status"] = NOT_COMPUTED
    data["removal_effect_candidates"] = {
        "rule": (f"above {filter_above} states the paper removal effect is solved only for states reached by at least "
                 f"{candidate_options.get('min_n', MIN_N)} completed journeys with lift on {m.conversion_outcome} of "
                 f"at least {candidate_options.get('min_lift', MIN_LIFT)}, ranked by reach x lift x n, at most "
                 f"{candidate_options.get('limit', MAX_CANDIDATES)}; removal_effect_relative is complete"),
        "states": len(m.states), "computed": len(chosen), "not_computed": len(m.states) - len(chosen) - 1,
    }
    return data


def _sparse(snap: Snapshot) -> Snapshot:
    """A private copy of `snap` whose chain is the sparse one (the caller's snapshot keeps its dense chain)."""
    from engine.markov_sparse import SparseChain  # scipy.sparse.linalg: imported only when needed (a view stays quick)

    p = snap.payload
    copy = Snapshot(snap.payload_json)
    copy.__dict__["metrics"] = SparseChain(p["states"], p["outcomes"], snap.counts, p["start_state"],
                                           p["conversion_outcome"], p["dropoff_outcome"])
    return copy


def seconds_estimate(n_states: int) -> float:
    """Rough cost of `compute`: the solve of I − Q (dense, or sparse above the filter) plus per-state work."""
    if n_states <= CANDIDATE_FILTER_STATES:
        return n_states ** 3 / LU_UNITS_PER_S + n_states * STATE_OVERHEAD_S
    return n_states * STATE_OVERHEAD_S + MAX_CANDIDATES * SPARSE_REMOVAL_S


def check_work(snapshot_id: str, n_states: int, max_seconds: float | None) -> None:
    """Refuse an on-demand computation estimated above `max_seconds` (a server keeps a worker free)."""
    if max_seconds is not None and seconds_estimate(n_states) > max_seconds:
        raise EngineError(f"snapshot {snapshot_id} has {n_states} states and no stored metrics; computing them here "
                          f"takes about {seconds_estimate(n_states):.0f} s (limit {max_seconds:.0f} s). Re-run "
                          "`journeygraph run` to store them, or use `journeygraph snapshot ID` on the command line")


def store(con: Any, snaps: Sequence[Snapshot]) -> int:
    """Compute and store the metrics of every snapshot not stored yet, in one transaction; returns how many."""
    con.execute(SCHEMA_SQL)
    ids = [s.snapshot_id for s in snaps]
    have = {r[0] for r in con.execute("SELECT snapshot_id FROM state_metrics WHERE metrics_version = ? AND "
                                      "list_contains(?, snapshot_id)", [METRICS_VERSION, ids]).fetchall()}
    rows, seen = [], set(have)
    for snap in snaps:
        if snap.snapshot_id in seen:
            continue
        seen.add(snap.snapshot_id)
        if seconds_estimate(len(snap.payload["states"])) > STORE_MAX_SECONDS:
            log.warning("snapshot %s: %d states, metrics not stored (estimated over %.0f s); views compute them on "
                        "demand within their cap", snap.snapshot_id, len(snap.payload["states"]), STORE_MAX_SECONDS)
            continue
        try:
            data = compute(snap)
        except EngineError:  # a chain that cannot be solved: the view reports the same error on demand
            continue
        rows.append((snap.snapshot_id, METRICS_VERSION, json.dumps(data, ensure_ascii=False)))
    if rows:
        con.execute("BEGIN TRANSACTION")
        try:
            con.executemany("INSERT INTO state_metrics VALUES (?, ?, ?)", rows)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return len(rows)


def load(con: Any, snapshot_id: str) -> dict[str, Any] | None:
    """The stored metrics of a snapshot, or None when the run did not store them (older workspace)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'state_metrics'").fetchone()
    if not exists or not exists[0]:
        return None
    row = con.execute("SELECT metrics::VARCHAR FROM state_metrics WHERE snapshot_id = ? AND metrics_version = ?",
                      [snapshot_id, METRICS_VERSION]).fetchone()
    return None if row is None else json.loads(row[0])


def group_rare(data: dict[str, Any], max_states: int) -> dict[str, Any]:
    """A view of `snapshot` JSON with at most `max_states` states: the lowest-reach ones become one "other" node.

    Views only; the stored metrics stay complete. Transition counts into, out of and within the group are
    summed and their probabilities recomputed from the summed counts; the group's own metrics are null.
    """
    rows = data["states"]
    if max_states < 2:
        raise EngineError(f"a graph view needs at least 2 states, got max_states={max_states}")
    if len(rows) <= max_states:
        return data
    start = data["start_state"]
    ranked = sorted(rows, key=lambda r: (r["state"] != start, -(r["reach"] or 0.0), r["state"]))
    kept = {r["state"] for r in ranked[: max_states - 1]}
    label = f"other ({len(rows) - len(kept)} states)"
    name = lambda s: s if s in kept or s in data["outcomes"] else label  # noqa: E731
    counts: dict[tuple[str, str], int] = {}
    for t in data["transitions"]:
        key = (name(t["from"]), name(t["to"]))
        counts[key] = counts.get(key, 0) + int(t["count"])
    out: dict[str, int] = {}
    for (src, _), c in counts.items():
        out[src] = out.get(src, 0) + c
    other: dict[str, Any] = {k: ({o: None for o in v} if isinstance(v, dict) else None) for k, v in rows[0].items()}
    other.update(state=label, grouped_states=len(rows) - len(kept))
    grouped = dict(data)
    grouped["states"] = [r for r in rows if r["state"] in kept] + [other]
    grouped["transitions"] = [{"from": a, "to": b, "count": c, "probability": round(c / out[a], 6)}
                              for (a, b), c in counts.items()]
    grouped["grouped"] = {"label": label, "states": len(rows) - len(kept), "max_states": max_states,
                          "rule": "the states with the lowest reach are grouped for display; "
                                  "`journeygraph snapshot` lists every state"}
    return grouped
