"""Recompute every number of a fact from the stored derived tables, independently of the snapshot.

The snapshot payload is *not* read for counts: each fact's snapshot row gives
only the scope definition (tenant, journey, window on start_ts, segment value,
release window), and the counts are rebuilt in DuckDB SQL from `journeys` and
`journey_steps` (mature = non-censored journeys). The evidence numbers are then
derived from those counts with the documented formulas, chain numbers from a
fresh `engine.markov.ChainMetrics`, and test statistics with the same tests
(`detectors.stats`) the detectors use. Each number is reported as stored,
recomputed and whether they match exactly after the fact's rounding (6 decimals).

q-values are the one number a single fact cannot carry back: a
Benjamini-Hochberg q depends on every test of the family. They are reported as
`family` (checked only for q ≥ p), never as a match.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from detectors.stats import (
    chi2_homogeneity,
    jensen_shannon,
    normal_upper,
    proportion_test,
    two_proportion_z,
)
from engine.markov import ChainMetrics
from ontology.errors import JourneyGraphError
from ontology.model import Fact

DECIMALS = 6
_ROW_COLS = ("snapshot_id", "tenant_id", "journey", "scope", "segment_key", "segment_value", "release",
             "window_start", "window_end", "payload")


def snapshot_row(con: Any, snapshot_id: str) -> dict[str, Any]:
    """The snapshots-table row of a snapshot, payload parsed; a clear error when it is missing."""
    row = con.execute(f"SELECT {', '.join(_ROW_COLS)} FROM snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
    if row is None:
        raise JourneyGraphError(f"snapshot {snapshot_id} is not in the workspace's snapshots table; "
                                "re-run `journeygraph run` to rebuild it")
    out = dict(zip(_ROW_COLS, row))
    out["payload"] = json.loads(out["payload"]) if isinstance(out["payload"], str) else dict(out["payload"] or {})
    return out


def scope_where(row: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """WHERE clause over `journeys j` selecting a snapshot's journeys (censored ones included)."""
    clauses = ["j.journey = ?", "coalesce(j.tenant_id, '') = ?"]
    params: list[Any] = [row["journey"], row["tenant_id"] or ""]
    if row["scope"] not in ("all", "segment"):
        clauses += ["j.start_ts >= ?", "j.start_ts < ?"]
        params += [row["window_start"], row["window_end"]]
    if row["segment_key"]:
        clauses.append("coalesce(map_extract_value(j.segments, ?), '(none)') = ?")
        params += [row["segment_key"], row["segment_value"]]
    return " AND ".join(clauses), params


_COUNTS_SQL = """
WITH scope AS (SELECT j.journey_id, coalesce(j.outcome, ?) AS outcome, j.actor_id FROM journeys j
               WHERE {where} AND NOT j.censored),
raw AS (
  SELECT s.journey_id, s.step, s.state, sc.outcome,
         lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
  FROM journey_steps s JOIN scope sc USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL),
steps AS (
  SELECT journey_id, state, outcome, row_number() OVER (PARTITION BY journey_id ORDER BY step) AS step
  FROM raw WHERE NOT ? OR prev IS NULL OR prev <> state),
trans AS (
  SELECT state AS src, coalesce(lead(state) OVER (PARTITION BY journey_id ORDER BY step), outcome) AS dst
  FROM steps),
visits AS (SELECT journey_id, state, any_value(outcome) AS outcome, count(*) AS v FROM steps GROUP BY ALL)
SELECT 'trans' AS kind, src AS a, dst AS b, count(*) AS n FROM trans GROUP BY ALL
UNION ALL SELECT 'reach', state, outcome, count(*) FROM visits GROUP BY ALL
UNION ALL SELECT 'visit', state, NULL, sum(v) FROM visits GROUP BY ALL
UNION ALL SELECT 'repeat', state, outcome, count(*) FROM visits WHERE v >= 2 GROUP BY ALL
UNION ALL SELECT 'outcome', outcome, NULL, count(*) FROM scope GROUP BY ALL
UNION ALL SELECT 'actors', NULL, NULL, count(DISTINCT actor_id) FROM scope
ORDER BY ALL
"""


def _nested(rows: list[tuple[Any, ...]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for _, a, b, n in rows:
        out.setdefault(a, {})[b] = int(n)
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def recount(con: Any, row: Mapping[str, Any]) -> dict[str, Any]:
    """The snapshot's count fields rebuilt from journeys/journey_steps (payload-shaped)."""
    where, params = scope_where(row)
    collapse = bool(row["payload"].get("collapse_self_loops", False))
    dropoff = row["payload"].get("dropoff_outcome")
    rows = con.execute(_COUNTS_SQL.format(where=where), [dropoff] + params + [row["journey"], collapse]).fetchall()
    kinds: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        kinds.setdefault(r[0], []).append(r)
    reach_outcome = _nested(kinds.get("reach", []))
    repeat_outcome = _nested(kinds.get("repeat", []))
    total, censored = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE j.censored) FROM journeys j WHERE {where}", params).fetchone()
    outcome_counts = {a: int(n) for _, a, _, n in kinds.get("outcome", [])}
    return {
        "journeys": int(total), "censored": int(censored), "completed": sum(outcome_counts.values()),
        "actors": int(kinds["actors"][0][3]) if kinds.get("actors") else 0,
        "outcome_counts": dict(sorted(outcome_counts.items())),
        "transitions": [{"from": a, "to": b, "count": int(n)} for _, a, b, n in kinds.get("trans", [])],
        "states": sorted(set(reach_outcome) | {row["payload"]["start_state"]}),
        "reach_counts": {s: sum(v.values()) for s, v in reach_outcome.items()},
        "reach_outcome_counts": reach_outcome,
        "visit_counts": {a: int(n) for _, a, _, n in kinds.get("visit", [])},
        "repeat_counts": {s: sum(v.values()) for s, v in repeat_outcome.items()},
        "repeat_outcome_counts": repeat_outcome,
    }


@dataclass
class Recount:
    """Recomputed counts of one snapshot scope with the accessors the formulas need."""

    row: Mapping[str, Any]
    data: Mapping[str, Any]
    counts: dict[tuple[str, str], int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = {(t["from"], t["to"]): t["count"] for t in self.data["transitions"]}

    @property
    def payload(self) -> Mapping[str, Any]:
        return self.row["payload"]

    @property
    def completed(self) -> int:
        return int(self.data["completed"])

    @property
    def states(self) -> list[str]:
        return list(self.data["states"])

    @property
    def start(self) -> str:
        return str(self.payload["start_state"])

    @property
    def conversion(self) -> str:
        return str(self.payload["conversion_outcome"])

    @property
    def dropoff(self) -> str:
        return str(self.payload["dropoff_outcome"])

    def count(self, a: str, b: str) -> int:
        return self.counts.get((a, b), 0)

    def out_total(self, a: str) -> int:
        return sum(c for (src, _), c in self.counts.items() if src == a)

    def outcome_count(self, o: str) -> int:
        return int(self.data["outcome_counts"].get(o, 0))

    def reach_count(self, s: str) -> int:
        return int(self.data["reach_counts"].get(s, 0))

    def reach(self, s: str) -> float:
        return self.reach_count(s) / self.completed if self.completed else 0.0

    def reach_outcome(self, s: str, o: str) -> int:
        return int(self.data["reach_outcome_counts"].get(s, {}).get(o, 0))

    def repeat_count(self, s: str) -> int:
        return int(self.data["repeat_counts"].get(s, 0))

    def repeat_outcome(self, s: str, o: str) -> int:
        return int(self.data["repeat_outcome_counts"].get(s, {}).get(o, 0))

    def visit_count(self, s: str) -> int:
        return int(self.data["visit_counts"].get(s, 0))

    @cached_property
    def metrics(self) -> ChainMetrics:
        """The absorbing chain rebuilt from the recomputed transition counts."""
        outcomes = sorted(set(self.payload.get("outcomes", [])) | {b for (_, b) in self.counts if b not in self.states})
        return ChainMetrics.from_counts(self.states, outcomes, self.counts, self.start, self.conversion, self.dropoff)


@dataclass
class Ctx:
    """What a per-predicate recomputation may look at: the workspace and the detector settings."""

    con: Any
    settings: Mapping[str, Mapping[str, Any]]
    min_group_size: int
    releases: tuple[tuple[str, str], ...] = ()  # (name, at as ISO 8601 Z), sorted by time
    top_paths: int = 10
    cfg: Any = None  # the run's engine.config.Config: needed to recompute BH q-values (family_q)
    _cache: dict[str, Recount] = field(default_factory=dict)
    _families: dict[tuple[str, str], dict[tuple[str, str, str, str], Any]] = field(default_factory=dict)

    def recount(self, snapshot_id: str) -> Recount:
        if snapshot_id not in self._cache:
            row = snapshot_row(self.con, snapshot_id)
            self._cache[snapshot_id] = Recount(row, recount(self.con, row))
        return self._cache[snapshot_id]

    def all_scope(self, rc: Recount) -> Recount:
        """The all-data snapshot of the same tenant and journey (the 'rest' of a segment is all minus it)."""
        found = self.con.execute(
            "SELECT snapshot_id FROM snapshots WHERE scope = 'all' AND journey = ? AND coalesce(tenant_id, '') = ? "
            "ORDER BY snapshot_id LIMIT 1", [rc.row["journey"], rc.row["tenant_id"] or ""]).fetchone()
        if found is None:
            raise JourneyGraphError(f"no all-data snapshot for journey {rc.row['journey']}; re-run `journeygraph run`")
        return self.recount(found[0])

    def detector_config(self, name: str) -> Any:
        """The detector's frozen config with the run's overrides (the registry's own coercion)."""
        from detectors.registry import default_registry, settings_for

        return settings_for(default_registry().get(name), self.settings.get(name, {}))

    def setting(self, detector: str, key: str, default: Any = None) -> Any:
        return getattr(self.detector_config(detector), key, default)

    def floor(self, detector: str, default_n: int) -> int:
        return max(int(self.setting(detector, "min_n", default_n)), int(self.min_group_size))


def _name(entity: str) -> str:
    return entity.partition(":")[2]


def _reach_test(rc: Recount, state: str) -> dict[str, Any]:
    """The reached-vs-not-reached conversion 2×2 of a state (activation driver, necessary, increases)."""
    conv = rc.conversion
    n_r, n = rc.reach_count(state), rc.completed
    x_r = rc.reach_outcome(state, conv)
    x_nr = rc.outcome_count(conv) - x_r
    z, p, test = proportion_test(x_r, n_r, x_nr, n - n_r)
    pgr = x_r / n_r if n_r else 0.0
    pgnr = x_nr / (n - n_r) if n - n_r else 0.0
    return {"n": n, "n_reached": n_r, "n_not_reached": n - n_r, "p_given_reached": pgr,
            "p_given_not_reached": pgnr, "lift": pgr / pgnr if pgnr else None, "reach": rc.reach(state),
            "p_value": p, "test": test, "z": z}


def _driver(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    state, m = _name(fact.subject), rc.metrics
    out = _reach_test(rc, state)
    out.update({"removal_effect": m.removal_effect(state, rc.conversion),
                "removal_effect_relative": m.removal_effect_relative(state, rc.conversion),
                "absorption": m.absorption(state, rc.conversion),
                "baseline": rc.outcome_count(rc.conversion) / rc.completed,
                "removal_rank": _removal_rank(rc, ctx, state)})
    return out


def _removal_rank(rc: Recount, ctx: Ctx, state: str) -> int | None:
    """1-based rank of `state` among the eligible drivers by absolute removal effect (then name)."""
    cfg = ctx.detector_config("activation_driver")
    eligible = []
    for s in rc.states:
        n_r = rc.reach_count(s)
        if s == rc.start or n_r <= 0 or rc.completed - n_r <= 0:
            continue
        t = _reach_test(rc, s)
        if (rc.reach(s) >= cfg.min_reach and n_r >= max(cfg.min_n, ctx.min_group_size)
                and t["n_not_reached"] >= ctx.min_group_size and t["lift"] is not None and t["lift"] >= cfg.min_lift):
            eligible.append((-rc.metrics.removal_effect(s, rc.conversion), s))
    ranked = [s for _, s in sorted(eligible)]
    return ranked.index(state) + 1 if state in ranked else None


def _transition(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    a, b = _name(fact.subject), _name(fact.object)
    count, total = rc.count(a, b), rc.out_total(a)
    return {"count": count, "from_total": total, "probability": count / total if total else 0.0,
            "n": total, "chain_probability": rc.metrics.probability(a, b)}


def _dropoff(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    states = list(fact.evidence.get("states") or [_name(fact.subject)])
    exits = sum(rc.count(s, rc.dropoff) for s in states)
    out = sum(rc.out_total(s) for s in states)
    total_exit = sum(rc.count(s, rc.dropoff) for s in rc.states)
    total_out = sum(rc.out_total(s) for s in rc.states)
    _, p = two_proportion_z(exits, out, total_exit - exits, total_out - out)
    result = {"exit_probability": exits / out if out else 0.0, "exits": exits, "n": out, "p_value": p,
              "reach": max(rc.reach(s) for s in states), "n_reached": max(rc.reach_count(s) for s in states),
              "dropoff_outcome": rc.dropoff, "baseline_exit": (total_exit - exits) / max(1, total_out - out)}
    if len(states) == 1:
        result["chain_exit_probability"] = rc.metrics.exit_probability(states[0])
    else:
        result["states"] = states
    return result


def _revisited(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    state, conv = _name(fact.subject), rc.conversion
    reached, n_rep = rc.reach_count(state), rc.repeat_count(state)
    conv_rep = rc.repeat_outcome(state, conv)
    conv_single = rc.reach_outcome(state, conv) - conv_rep
    _, p_gap, gap_test = proportion_test(conv_single, reached - n_rep, conv_rep, n_rep)
    visits = rc.visit_count(state)
    p = _loop_p(visits, reached, float(ctx.setting("repeated_visit", "min_visits_mean", 1.5)))
    p_rep = conv_rep / n_rep if n_rep else 0.0
    p_single = conv_single / (reached - n_rep) if reached - n_rep else 0.0
    m = rc.metrics
    i, j = list(m.states).index(m.start), list(m.states).index(state)
    n_ss = float(m.N[j, j])
    mean = visits / reached if reached else 0.0
    return {"visits_mean": mean, "reach": rc.reach(state), "return_probability": 1.0 - 1.0 / mean if mean else None,
            "n_reached": reached, "n": reached, "n_repeat": n_rep, "p_convert_repeat": p_rep,
            "p_convert_single": p_single, "conversion_gap": p_single - p_rep, "test": "geometric_return_z",
            "p_value": p, "gap_p_value": p_gap, "gap_test": gap_test,
            "extra_expected_steps": float(m.N[i, j]) * (1.0 - 1.0 / n_ss) if n_ss > 0 else 0.0}


def _loop_p(visits: int, reached: int, tau: float) -> float:
    """One-sided test that visits are geometric with return probability above 1 − 1/tau (normal approx.)."""
    if visits <= 0 or tau <= 1.0:
        return 1.0
    r0 = 1.0 - 1.0 / tau
    z = ((visits - reached) / visits - r0) / math.sqrt(r0 * (1.0 - r0) / visits)
    return normal_upper(z)


def _common(fact: Fact, seg: Recount, ctx: Ctx) -> dict[str, Any]:
    base = ctx.all_scope(seg)
    kind, name = fact.subject.split(":", 1)
    x_s = seg.reach_count(name) if kind == "state" else seg.outcome_count(name)
    x_all = base.reach_count(name) if kind == "state" else base.outcome_count(name)
    n_s, n_r = seg.completed, base.completed - seg.completed
    x_r = max(0, x_all - x_s)
    z, p = two_proportion_z(x_s, n_s, x_r, n_r)
    return {"reach_segment": x_s / n_s, "reach_rest": x_r / n_r, "n_segment": n_s, "n_rest": n_r,
            "difference": x_s / n_s - x_r / n_r, "z": z, "p_value": p, "n": n_s + n_r}


def _diverges(fact: Fact, seg: Recount, ctx: Ctx) -> dict[str, Any]:
    from scipy import stats as sps

    base = ctx.all_scope(seg)
    floor = ctx.floor("segment_divergence", 50)
    stat_sum, dof_sum, n_seg, n_rest, top = 0.0, 0, 0, 0, ("", 0.0)
    for state in base.states:
        dests = sorted({d for (s, d) in base.counts if s == state})
        row_seg = np.array([seg.count(state, d) for d in dests], dtype=float)
        row_rest = np.clip(np.array([base.count(state, d) for d in dests], dtype=float) - row_seg, 0, None)
        if row_seg.sum() < floor or row_rest.sum() < floor:
            continue
        stat, dof, _ = chi2_homogeneity(np.vstack([row_seg, row_rest]))
        jsd = jensen_shannon(row_seg, row_rest)
        stat_sum, dof_sum = stat_sum + stat, dof_sum + dof
        n_seg, n_rest = n_seg + int(row_seg.sum()), n_rest + int(row_rest.sum())
        if jsd > top[1] or not top[0]:
            top = (state, jsd)
    return {"state": top[0], "jsd": top[1], "n_segment": n_seg, "n_rest": n_rest, "chi2": stat_sum, "dof": dof_sum,
            "test": "chi2_homogeneity", "n": n_seg + n_rest,
            "p_value": float(sps.chi2.sf(stat_sum, dof_sum)) if dof_sum else 1.0}


def _changed(fact: Fact, after: Recount, ctx: Ctx) -> dict[str, Any]:
    before_id = fact.evidence.get("before_snapshot") or (
        _name(fact.object) if fact.object.startswith("snapshot:") else None)
    if not before_id:
        raise JourneyGraphError(f"fact {fact.fact_id}: evidence names no before_snapshot; cannot recompute")
    before = ctx.recount(str(before_id))
    if fact.subject.startswith("edge:"):
        src, dst = _name(fact.subject).split("->", 1)
        x1, n1, x2, n2 = before.count(src, dst), before.out_total(src), after.count(src, dst), after.out_total(src)
        traffic = _traffic(before, after, src, ctx)
    else:
        o = _name(fact.subject)
        x1, n1, x2, n2 = before.outcome_count(o), before.completed, after.outcome_count(o), after.completed
        traffic = (1.0, 1.0, False)
    z, p = two_proportion_z(x2, n2, x1, n1)
    attribution, releases = _attribution(before, after, ctx)
    p_before, p_after = x1 / n1, x2 / n2
    delta = p_after - p_before
    return {"p_before": p_before, "p_after": p_after, "n_before": n1, "n_after": n2, "delta": delta,
            "relative_change": delta / p_before if p_before > 0 else (1.0 if delta > 0 else 0.0), "z": z,
            "p_value": p, "n": n1 + n2, "traffic_before": traffic[0], "traffic_after": traffic[1],
            "traffic_changed": traffic[2], "before_snapshot": before.row["snapshot_id"],
            "attribution": attribution, "releases": releases}


def _iso(ts: Any) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ") if hasattr(ts, "strftime") else str(ts)


def _attribution(before: Recount, after: Recount, ctx: Ctx) -> tuple[str, list[str]]:
    """Release markers inside the comparison window: none -> period, one -> release, more -> ambiguous."""
    if after.row["scope"] == "release_after":
        lo, hi = _iso(before.row["window_start"]), _iso(after.row["window_end"])
        extra = {str(after.row["release"])}
    else:
        lo, hi = _iso(before.row["window_end"]), _iso(after.row["window_end"])
        extra = set()
    names = sorted({name for name, at in ctx.releases if lo <= at < hi} | extra)
    return ("period" if not names else "release" if len(names) == 1 else "ambiguous"), names


def _traffic(before: Recount, after: Recount, src: str, ctx: Ctx) -> tuple[float, float, bool]:
    if src == after.start:
        return 1.0, 1.0, False
    _, p = two_proportion_z(after.reach_count(src), after.completed, before.reach_count(src), before.completed)
    return before.reach(src), after.reach(src), bool(p < float(ctx.setting("regression", "traffic_alpha")))


_PATHS_SQL = """
WITH scope AS (SELECT j.journey_id, coalesce(j.outcome, ?) AS outcome, j.actor_id, epoch(j.end_ts - j.start_ts) AS dur
               FROM journeys j WHERE {where} AND NOT j.censored),
raw AS (SELECT s.journey_id, s.step, s.state, lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
        FROM journey_steps s JOIN scope USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL),
jour AS (SELECT journey_id, list(state ORDER BY step) AS path, count(*) AS len
         FROM raw WHERE NOT ? OR prev IS NULL OR prev <> state GROUP BY journey_id),
po AS (SELECT j.path, s.outcome, count(*) AS cnt, count(DISTINCT s.actor_id) AS actors, median(s.dur) AS med_s,
              median(j.len) AS med_len FROM scope s JOIN jour j USING (journey_id) GROUP BY ALL),
seq AS (SELECT path, sum(cnt) AS n_seq, coalesce(sum(cnt) FILTER (outcome = ?), 0) AS n_conv FROM po GROUP BY path),
ranked AS (SELECT po.*, seq.n_seq, seq.n_conv, row_number() OVER (ORDER BY po.cnt DESC, po.path, po.outcome) AS rn
           FROM po JOIN seq USING (path))
SELECT path, outcome, cnt, actors, n_seq, n_conv, med_s, med_len, rn,
       (SELECT median(s.dur) FROM scope s JOIN jour USING (journey_id)),
       (SELECT median(len) FROM scope s JOIN jour USING (journey_id))
FROM ranked ORDER BY rn
"""


def _r6n(value: Any) -> float | None:
    return None if value is None else (round(float(value), 6) or 0.0)


def path_table(ctx: Ctx, rc: Recount) -> dict[str, Any]:
    """Top paths (engine.paths rules: rank by count, then path, then outcome) and the scope's medians."""
    where, params = scope_where(rc.row)
    sql = _PATHS_SQL.format(where=where)
    rows = ctx.con.execute(sql, [rc.dropoff, *params, rc.row["journey"], bool(rc.payload.get("collapse_self_loops")),
                                 rc.conversion]).fetchall()
    top = [{"path": list(r[0]), "outcome": r[1], "count": int(r[2]), "actors": int(r[3]),
            "conversion_rate": _r6n(r[5] / r[4]), "median_duration_s": _r6n(r[6]), "median_length": _r6n(r[7])}
           for r in rows if r[8] <= ctx.top_paths]
    med_s, med_len = (rows[0][9], rows[0][10]) if rows else (None, None)
    return {"top": top, "median_s": _r6n(med_s), "median_length": _r6n(med_len)}


def _path(fact: Fact, rc: Recount, ctx: Ctx) -> dict[str, Any]:
    """Path quality numbers (detectors.path_quality): top entries of the path merged across outcomes."""
    table = path_table(ctx, rc)
    states = _name(fact.subject).split(">")
    entries = [e for e in table["top"] if e["path"] == states]
    count = sum(e["count"] for e in entries)
    if not count or not table["median_s"] or not table["median_length"]:
        raise JourneyGraphError(f"path {'>'.join(states)} is not among the recomputed top paths")
    conversions = round(sum(float(e["conversion_rate"]) * e["count"] for e in entries))
    duration = sum(float(e["median_duration_s"] or 0.0) * e["count"] for e in entries) / count
    length = sum(float(e["median_length"] or len(states)) * e["count"] for e in entries) / count
    base_cr = rc.outcome_count(rc.conversion) / max(1, rc.completed)
    _, p, test = proportion_test(conversions, count, rc.outcome_count(rc.conversion) - conversions, rc.completed - count)
    ratio = max(duration / table["median_s"], 0.1) * max(length / table["median_length"], 0.1)
    return {"count": count, "share": count / rc.completed, "conversion_rate": conversions / count,
            "median_duration_s": duration, "median_length": length, "quality": conversions / count / ratio / base_cr,
            "test": test, "p_value": p, "n": rc.completed, "kind": fact.evidence.get("kind")}


RECOMPUTERS: Mapping[str, Callable[[Fact, Recount, Ctx], dict[str, Any]]] = {
    "transitions_to": _transition,
    "increases_probability_of": lambda f, rc, ctx: _reach_test(rc, _name(f.subject)),
    "is_activation_driver_for": _driver,
    "necessary_for_conversion": lambda f, rc, ctx: _reach_test(rc, _name(f.subject)),
    "is_dropoff_point_for": _dropoff,
    "is_revisited_in": _revisited,
    "more_common_in": _common,
    "less_common_in": _common,
    "diverges_from": _diverges,
    "regressed_after": _changed,
    "changed_after": _changed,
    "is_fast_path_to": _path,
    "associated_with": _path,
}


def _same(stored: Any, value: Any) -> bool:
    """Exact equality after the fact's rounding: floats to 6 decimals, ints, bools and text as they are."""
    if isinstance(stored, bool) or isinstance(value, bool):
        return bool(stored) == bool(value) and isinstance(stored, bool) == isinstance(value, bool)
    if isinstance(stored, (int, float)) and isinstance(value, (int, float)):
        if isinstance(stored, int) and not isinstance(stored, bool) and float(value).is_integer():
            return stored == int(value)
        return round(float(stored), DECIMALS) == round(float(value), DECIMALS)
    return stored == value


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 12)
    if hasattr(value, "item"):
        return _plain(value.item())
    return value


def recomputed_payload(ctx: Ctx, snapshot_id: str) -> dict[str, Any]:
    """The stored payload with every count, path and duration replaced by its recomputation."""
    rc = ctx.recount(snapshot_id)
    table = path_table(ctx, rc)
    payload = {**rc.payload, **rc.data}
    payload["durations"] = {"median_s": table["median_s"], "median_length": table["median_length"]}
    top = [{**e, "share": _r6n(e["count"] / rc.completed)} for e in table["top"]]
    payload["paths"] = {**(rc.payload.get("paths") or {}), "top": top}
    return payload


def family_q(ctx: Ctx, snapshot_id: str) -> dict[tuple[str, str, str, str], Any]:
    """q-values of every fact of the run that built `snapshot_id`, from detectors re-run on recomputed counts.

    A BH q depends on every p-value of its family, so the whole run's snapshots (same input and
    config hash) are rebuilt from journeys/journey_steps and the registered detectors run on them."""
    from detectors.runner import run_detectors
    from engine.snapshot import Snapshot

    payload = ctx.recount(snapshot_id).payload
    key = (str(payload.get("input_hash")), str(payload.get("config_hash")))
    if key not in ctx._families:
        ids = [r[0] for r in ctx.con.execute(
            "SELECT snapshot_id FROM snapshots WHERE coalesce(json_extract_string(payload, '$.input_hash'), 'None') = ? "
            "AND coalesce(json_extract_string(payload, '$.config_hash'), 'None') = ? ORDER BY snapshot_id", list(key)).fetchall()]
        snaps = [Snapshot.from_payload(recomputed_payload(ctx, sid)) for sid in ids]
        run = run_detectors(snaps, ctx.cfg)
        ctx._families[key] = {(f.subject, f.predicate, f.object, f.provenance.snapshot_id): f.evidence.get("q_value")
                              for f in run.facts}
    return ctx._families[key]


def _family_value(fact: Fact, ctx: Ctx) -> tuple[Any, str | None]:
    """The fact's recomputed q (None and why when the family cannot be rebuilt)."""
    if ctx.cfg is None:
        return None, "no run config in the workspace: q checked only as p <= q <= 1"
    try:
        table = family_q(ctx, fact.provenance.snapshot_id)
    except (ImportError, KeyError, ValueError, JourneyGraphError) as exc:
        return None, f"family not rebuilt ({type(exc).__name__}: {exc}); q checked only as p <= q <= 1"
    key = (fact.subject, fact.predicate, fact.object, fact.provenance.snapshot_id)
    if key not in table:
        return None, "the detectors re-run on recomputed counts do not produce this fact"
    return table[key], None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _compare(key: str, stored: Any, recomputed: Mapping[str, Any], p_value: Any) -> dict[str, Any]:
    """One evidence entry: stored, recomputed and its status."""
    entry: dict[str, Any] = {"key": key, "stored": stored, "number": _number(stored)}
    if key == "q_value" and recomputed.get("q_value") is not None:
        value = _plain(recomputed["q_value"])
        match = _same(stored, value)
        entry.update(recomputed=value, status="match" if match else "mismatch", match=match,
                     note="Benjamini-Hochberg over the run's family, detectors re-run on recomputed counts")
    elif key == "q_value" and recomputed.get("_q_note", "").startswith("the detectors re-run"):
        entry.update(recomputed=None, status="mismatch", match=False, note=recomputed["_q_note"])
    elif key == "q_value":
        ok = _number(p_value) and float(p_value) - 1e-6 <= float(stored) <= 1.0
        entry.update(recomputed=None, status="family" if ok else "mismatch", match=bool(ok),
                     note=recomputed.get("_q_note") or "BH q depends on the whole test family; checked p <= q <= 1")
    elif key in recomputed and recomputed[key] is not None:
        value = _plain(recomputed[key])
        match = _same(stored, value)
        entry.update(recomputed=value, status="match" if match else "mismatch", match=match)
    else:
        entry.update(recomputed=None, status="not_recomputed", match=False)
    return entry


def workspace_config(con: Any) -> Any:
    """The config of the workspace's last run (config.json beside the DuckDB file), or None.

    The shell saves {"raw": <journeygraph.yaml as parsed>, "base_dir": ...}; detector settings,
    privacy and releases are all this module needs from it."""
    try:
        path = Path(con.execute("SELECT file FROM pragma_database_list WHERE name = current_database()").fetchone()[0])
        saved = json.loads((path.parent / "config.json").read_text())
    except (OSError, TypeError, ValueError, IndexError):
        return None
    from engine.config import from_dict

    raw = saved.get("raw", saved) if isinstance(saved, dict) else {}
    try:
        return from_dict(raw, base_dir=str(saved.get("base_dir", path.parent)))
    except JourneyGraphError:
        return None


def make_context(con: Any, cfg: Any = None) -> Ctx:
    """Detector settings, min_group_size and releases from the config (the workspace's when not given)."""
    cfg = cfg if cfg is not None else workspace_config(con)
    if cfg is None:
        return Ctx(con=con, settings={}, min_group_size=20)
    from detectors.registry import default_registry

    names = default_registry().names()
    return Ctx(con=con, settings={n: cfg.detector_settings(n) for n in names}, cfg=cfg,
               min_group_size=int(cfg.privacy.min_group_size),
               releases=tuple((r.name, r.at) for r in cfg.releases), top_paths=int(cfg.snapshots.top_paths))


def recompute_fact(fact: Fact, *, con: Any, cfg: Any = None, ctx: Ctx | None = None) -> dict[str, Any]:
    """Every evidence entry of `fact` recomputed from journeys/journey_steps, with match flags."""
    ctx = ctx or make_context(con, cfg)
    rc = ctx.recount(fact.provenance.snapshot_id)
    fn = RECOMPUTERS.get(fact.predicate)
    error = None
    recomputed: dict[str, Any] = {}
    if fn is None:
        error = f"no recomputation for predicate {fact.predicate}"
    else:
        try:
            recomputed = fn(fact, rc, ctx)
        except (KeyError, ValueError, JourneyGraphError) as exc:
            error = f"{type(exc).__name__}: {exc}"
    recomputed.setdefault("journey", rc.row["journey"])
    if "q_value" in fact.evidence and error is None:
        recomputed["q_value"], note = _family_value(fact, ctx)
        recomputed["_q_note"] = note or ""
    entries = [_compare(k, v, recomputed, fact.evidence.get("p_value")) for k, v in sorted(fact.evidence.items())]
    numbers = [e for e in entries if e["number"]]
    return {
        "fact_id": fact.fact_id, "predicate": fact.predicate, "subject": fact.subject, "object": fact.object,
        "snapshot_id": fact.provenance.snapshot_id, "entries": entries,
        "numbers": len(numbers), "matched": sum(1 for e in numbers if e["match"]),
        "exact": sum(1 for e in numbers if e["status"] == "match"),
        "mismatched": [e["key"] for e in entries if e["status"] == "mismatch"],
        "not_recomputed": [e["key"] for e in entries if e["status"] == "not_recomputed"],
        "ok": error is None and all(e["match"] for e in entries), "error": error,
    }


def compare_snapshot(con: Any, snapshot_id: str, ctx: Ctx | None = None) -> dict[str, Any]:
    """The stored snapshot's count fields against their recomputation (the trace's 'metrics' layer)."""
    ctx = ctx or make_context(con)
    rc = ctx.recount(snapshot_id)
    payload = rc.payload
    fields = {}
    for key, value in rc.data.items():
        if key not in payload:
            continue
        stored = payload.get(key)
        if isinstance(stored, Mapping):  # a zero count and an absent key say the same thing
            stored, value = _nonzero(stored), _nonzero(value)
        if key == "transitions" and stored is not None:
            stored = sorted(({"from": t["from"], "to": t["to"], "count": t["count"]} for t in stored),
                            key=lambda t: (t["from"], t["to"]))
            value = sorted(value, key=lambda t: (t["from"], t["to"]))
        fields[key] = {"match": stored == value, **({} if stored == value else {"stored": stored, "recomputed": value})}
    return {"snapshot_id": snapshot_id, "scope": rc.row["scope"], "journey": rc.row["journey"],
            "fields": fields, "ok": all(f["match"] for f in fields.values())}


def _nonzero(value: Any) -> Any:
    if isinstance(value, Mapping):
        out = {k: _nonzero(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in (0, {})}
    return value


def recompute_all(facts: Any, *, con: Any, cfg: Any = None) -> dict[str, Any]:
    """Recompute every fact; the totals an auditor reads (numbers matched of numbers stored)."""
    ctx = make_context(con, cfg)
    results = [recompute_fact(f, con=con, ctx=ctx) for f in sorted(facts, key=lambda f: f.fact_id)]
    numbers = sum(r["numbers"] for r in results)
    matched = sum(r["matched"] for r in results)
    return {"facts": len(results), "facts_ok": sum(1 for r in results if r["ok"]), "numbers": numbers,
            "numbers_matched": matched, "numbers_exact": sum(r["exact"] for r in results),
            "share": matched / numbers if numbers else 1.0,
            "failures": [r for r in results if not r["ok"]]}
