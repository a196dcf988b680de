"""Recompute every number of a fact from the stored derived tables, independently of the snapshot.

The snapshot payload is *not* read for counts: each fact's snapshot row gives
only the scope definition (tenant, journey, window on start_ts, segment value,
release window), and the counts are rebuilt in DuckDB SQL from `journeys` and
`journey_steps` (mature = non-censored journeys). The evidence numbers are then
derived from those counts with the documented formulas, chain numbers from a
fresh `engine.markov.ChainMetrics`, and test statistics with the same tests
(`detectors.stats`) the detectors use. Each number is reported as stored,
recomputed and whether they match exactly after the fact's rounding (6 decimals).

This module holds the recount (SQL over the journey tables, the `Recount` view,
the path table) and the stored-vs-recomputed comparison; the per-predicate
formulas live in narrator.recompute_formulas, each named by its predicate's kind (narrator.kinds).

q-values are the one number a single fact cannot carry back: a
Benjamini-Hochberg q depends on every test of the family. They are reported as
`family` (checked only for q ≥ p), never as a match.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from detectors.view import SnapView
from engine.markov import ChainMetrics
from narrator import kinds
from ontology.errors import JourneyGraphError, NotFound
from ontology.model import Fact

DECIMALS = 6
_ROW_COLS = ("snapshot_id", "tenant_id", "journey", "scope", "segment_key", "segment_value", "release",
             "window_start", "window_end", "payload")


def snapshot_row(con: Any, snapshot_id: str) -> dict[str, Any]:
    """The snapshots-table row of a snapshot, payload parsed; a clear error when it is missing."""
    row = con.execute(f"SELECT {', '.join(_ROW_COLS)} FROM snapshots WHERE snapshot_id = ?", [snapshot_id]).fetchone()
    if row is None:
        raise NotFound(f"snapshot {snapshot_id} is not in the workspace's snapshots table; "
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
        **_in_progress(con, where, params, row["payload"]),
    }


def _in_progress(con: Any, where: str, params: list[Any], payload: Mapping[str, Any]) -> dict[str, Any]:
    """Resolved steps, observation and outcome incidence (engine.resolved), when the snapshot and tables have them."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "journey_window_s" not in payload or "journey_progress" not in tables:
        return {}
    from engine.resolved import recount_in_progress

    return recount_in_progress(con, where, params, payload)


class _Recounted:
    """What a SnapView reads (payload, metrics), every count taken from the recount.

    The payload is the stored one overlaid with the recomputed count fields, so
    only the scope definition (start state, outcomes, collapse flag…) comes from
    the snapshot; `metrics` is a fresh chain over the recomputed transitions."""

    def __init__(self, row: Mapping[str, Any], data: Mapping[str, Any]) -> None:
        self.row, self.data = row, data
        self.payload: dict[str, Any] = {**row["payload"], **data}

    @cached_property
    def metrics(self) -> ChainMetrics:
        """The absorbing chain rebuilt from the recomputed transition counts."""
        view = SnapView(self)
        counts, states = view.counts, view.states
        outcomes = sorted(set(self.payload.get("outcomes", [])) | {b for (_, b) in counts if b not in states})
        return ChainMetrics.from_counts(states, outcomes, counts, view.start, view.conversion, view.dropoff)


class Recount(SnapView):
    """Recomputed counts of one snapshot scope behind the detectors' own accessors (detectors.view)."""

    @classmethod
    def of(cls, row: Mapping[str, Any], data: Mapping[str, Any]) -> Recount:
        return cls(_Recounted(row, data))

    @property
    def row(self) -> Mapping[str, Any]:
        """The snapshots-table row: scope definition and the *stored* payload."""
        return self.snap.row

    @property
    def data(self) -> Mapping[str, Any]:
        """The recomputed count fields (payload-shaped)."""
        return self.snap.data

    @property
    def metrics(self) -> ChainMetrics:
        return self.snap.metrics


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
            self._cache[snapshot_id] = Recount.of(row, recount(self.con, row))
        return self._cache[snapshot_id]

    def all_scope(self, rc: Recount) -> Recount:
        """The all-data snapshot of the same tenant and journey (the 'rest' of a segment is all minus it)."""
        found = self.con.execute(
            "SELECT snapshot_id FROM snapshots WHERE scope = 'all' AND journey = ? AND coalesce(tenant_id, '') = ? "
            "ORDER BY snapshot_id LIMIT 1", [rc.row["journey"], rc.row["tenant_id"] or ""]).fetchone()
        if found is None:
            raise NotFound(f"no all-data snapshot for journey {rc.row['journey']}; re-run `journeygraph run`")
        return self.recount(found[0])

    def detector_config(self, name: str) -> Any:
        """The detector's frozen config with the run's overrides (the registry's own coercion)."""
        from detectors.registry import default_registry, settings_for

        return settings_for(default_registry().get(name), self.settings.get(name, {}))

    def setting(self, detector: str, key: str, default: Any = None) -> Any:
        return getattr(self.detector_config(detector), key, default)

    def floor(self, detector: str, default_n: int) -> int:
        return max(int(self.setting(detector, "min_n", default_n)), int(self.min_group_size))

    def path_table(self, rc: Recount) -> dict[str, Any]:
        return path_table(self, rc)


_PATHS_SQL = """
WITH scope AS (SELECT j.journey_id, coalesce(j.outcome, ?) AS outcome, j.actor_id, j.start_ts, j.end_ts
               FROM journeys j WHERE {where} AND NOT j.censored),
raw AS (SELECT s.journey_id, s.step, s.state, s.ts, lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
        FROM journey_steps s JOIN scope USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL),
jour AS (SELECT journey_id, list(state ORDER BY step) AS path, count(*) AS len, max(ts) AS last_ts
         FROM raw WHERE NOT ? OR prev IS NULL OR prev <> state GROUP BY journey_id),
timed AS (SELECT s.*, j.path, j.len,
                 epoch(CASE WHEN s.outcome = ? THEN j.last_ts ELSE s.end_ts END - s.start_ts) AS dur,
                 s.outcome = ? AS conv
          FROM scope s JOIN jour j USING (journey_id)),
po AS (SELECT path, outcome, count(*) AS cnt, count(DISTINCT actor_id) AS actors, median(dur) AS med_s,
              median(len) AS med_len FROM timed GROUP BY ALL),
seq AS (SELECT path, sum(cnt) AS n_seq, coalesce(sum(cnt) FILTER (outcome = ?), 0) AS n_conv FROM po GROUP BY path),
ranked AS (SELECT po.*, seq.n_seq, seq.n_conv, row_number() OVER (ORDER BY po.cnt DESC, po.path, po.outcome) AS rn
           FROM po JOIN seq USING (path)),
meds AS (SELECT median(dur) AS m_s, median(len) AS m_len, median(dur) FILTER (conv) AS c_s,
                median(len) FILTER (conv) AS c_len, median(dur) FILTER (NOT conv) AS l_s,
                median(len) FILTER (NOT conv) AS l_len FROM timed)
SELECT path, outcome, cnt, actors, n_seq, n_conv, med_s, med_len, rn, meds.*
FROM ranked CROSS JOIN meds ORDER BY rn
"""


def _r6n(value: Any) -> float | None:
    return None if value is None else (round(float(value), 6) or 0.0)


def path_table(ctx: Ctx, rc: Recount) -> dict[str, Any]:
    """Top paths (engine.paths rules: rank by count, then path, then outcome) and the scope's medians."""
    where, params = scope_where(rc.row)
    sql = _PATHS_SQL.format(where=where)
    rows = ctx.con.execute(sql, [rc.dropoff, *params, rc.row["journey"], bool(rc.payload.get("collapse_self_loops")),
                                 rc.dropoff, rc.conversion, rc.conversion]).fetchall()
    top = [{"path": list(r[0]), "outcome": r[1], "count": int(r[2]), "actors": int(r[3]),
            "conversion_rate": _r6n(r[5] / r[4]), "sequence_count": int(r[4]), "sequence_conversions": int(r[5]),
            "median_duration_s": _r6n(r[6]), "median_length": _r6n(r[7])}
           for r in rows if r[8] <= ctx.top_paths]
    meds = [_r6n(v) for v in rows[0][9:15]] if rows else [None] * 6
    by_class = {"converted": {"median_s": meds[2], "median_length": meds[3]},
                "lost": {"median_s": meds[4], "median_length": meds[5]}}
    return {"top": top, "median_s": meds[0], "median_length": meds[1], "by_class": by_class}



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
    payload = dict(rc.payload)  # already the stored payload overlaid with the recount
    payload["durations"] = {"median_s": table["median_s"], "median_length": table["median_length"],
                            "by_class": table["by_class"]}
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
    """The config of the workspace's last run (config.json beside the DuckDB file), or None."""
    try:
        path = Path(con.execute("SELECT file FROM pragma_database_list WHERE name = current_database()").fetchone()[0])
        saved = json.loads((path.parent / "config.json").read_text())
    except (OSError, TypeError, ValueError, IndexError):
        return None
    from engine.config import from_saved

    try:
        return from_saved(saved if isinstance(saved, dict) else {}, base_dir=str(path.parent))
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
    kind = kinds.registry().fact(fact.predicate)
    fn = kind.recompute if kind else None
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
    payload = rc.row["payload"]  # the stored payload, not the view's recount-overlaid one
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
