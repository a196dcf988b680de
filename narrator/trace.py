"""The audit trail of one insight: sentence → facts → evidence → snapshot metrics → recomputation → raw events.

An auditor gets, for every sentence of the narrative, the facts it cites; for
each fact its evidence, the metrics of the snapshot it was read from, every
evidence number recomputed from the stored derived tables (narrator.recompute,
match or mismatch), and a few deterministic event ids from `journey_steps`
checked against `events`. The exact `bundle` and `narrative` are included and
the faithfulness checker is re-run on them, so `journeygraph verify` on the
same two gives the same verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from engine import carried
from narrator.recompute import (
    Ctx,
    compare_snapshot,
    make_context,
    recompute_fact,
    scope_where,
    snapshot_row,
)
from narrator.retrieval import fact_entities
from narrator.summaries import summarize
from ontology.errors import BadInput, JourneyGraphError, NotFound
from ontology.model import Fact
from ontology.names import entity_states

SAMPLE_EVENTS = 5


def load_insight(con: Any, insight_id: str) -> dict[str, Any]:
    """The insight payload by id or unique prefix (≥ 8 characters); errors name the fix."""
    key = insight_id.strip().lower()
    if not re.fullmatch(r"[0-9a-f]+", key):
        raise BadInput(f"insight id {insight_id!r} is not a hex id; copy one from `journeygraph feed --format json`")
    if len(key) < 8:
        raise BadInput(f"insight id {insight_id!r} is too short; give at least 8 characters "
                                "(ids are listed by `journeygraph feed --format json`)")
    rows = con.execute("SELECT insight_id, payload FROM insights WHERE insight_id LIKE ? || '%' ORDER BY insight_id",
                       [key]).fetchall()
    if not rows:
        raise NotFound(f"no insight {insight_id} in this workspace; list ids with `journeygraph feed --format json`")
    if len(rows) > 1:
        raise BadInput(f"insight prefix {insight_id} is ambiguous ({len(rows)} matches); give more characters")
    payload = rows[0][1]
    return json.loads(payload) if isinstance(payload, str) else dict(payload)


def _sentences(narrative: Mapping[str, Any]) -> list[dict[str, Any]]:
    sentences = [dict(s) for s in narrative.get("sentences") or []]
    rec = narrative.get("recommendation")
    if isinstance(rec, Mapping) and (not sentences or sentences[-1].get("text") != rec.get("text")):
        sentences.append(dict(rec))
    return [{"index": i + 1, "text": s.get("text", ""), "fact_ids": list(s.get("fact_ids") or [])}
            for i, s in enumerate(sentences)]


# A fact from an in-progress estimate (its evidence names the estimator) also stands on open journeys: their
# steps whose next state is seen, and their outcome once known (journey_progress); completed-only facts on
# completed journeys alone.
_COMPLETED_SCOPE = """SELECT j.journey_id, coalesce(j.outcome, ?) AS outcome, j.segments FROM journeys j
                      WHERE {where} AND NOT j.censored"""
_OPEN_TOO_SCOPE = """SELECT j.journey_id, CASE WHEN NOT j.censored THEN coalesce(j.outcome, ?) ELSE pr.known_outcome END
                            AS outcome, j.segments
                     FROM journeys j LEFT JOIN journey_progress pr ON pr.journey = j.journey AND pr.journey_id = j.journey_id
                     WHERE {where}"""
_SAMPLE_SQL = """
WITH scope AS ({scope}),
steps AS (
  SELECT s.journey_id, s.step, s.state, s.event_id, sc.outcome, sc.segments,
         lead(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS next_state
  FROM journey_steps s JOIN scope sc USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL)
SELECT st.event_id, e.event_name, strftime(e.ts, '%Y-%m-%dT%H:%M:%SZ') AS ts, e.event_id IS NOT NULL AS in_events
FROM steps st LEFT JOIN events e ON e.event_id = st.event_id
WHERE {match}
ORDER BY st.journey_id, st.step LIMIT ?
"""


def _event_match(fact: Fact, outcomes: Sequence[str]) -> tuple[str, list[Any]]:
    """The step filter that picks events behind a fact (its subject state, edge, path or segment)."""
    kind, _, rest = fact.subject.partition(":")
    obj_kind, _, obj = fact.object.partition(":")
    if kind == "edge" or (kind == "state" and fact.predicate == "transitions_to"):
        src, dst = entity_states(fact.subject) if kind == "edge" else (rest, obj)
        if (obj_kind == "outcome" and kind == "state") or (kind == "edge" and dst in outcomes):
            return "st.state = ? AND st.next_state IS NULL AND st.outcome = ?", [src, dst]
        return "st.state = ? AND st.next_state = ?", [src, dst]
    if kind == "state":
        return "st.state = ?", [rest]
    if kind == "path":
        return "st.state = ?", [entity_states(fact.subject)[0]]
    if kind == "outcome":
        return "st.next_state IS NULL AND st.outcome = ?", [rest]
    if kind == "segment":
        key, _, value = rest.partition("=")
        return ("st.step = (SELECT min(step) FROM journey_steps x WHERE x.journey_id = st.journey_id) "
                "AND coalesce(map_extract_value(st.segments, ?), '(none)') = ?"), [key, value]
    return "TRUE", []


def sample_events(con: Any, fact: Fact, row: Mapping[str, Any], k: int = SAMPLE_EVENTS) -> list[dict[str, Any]]:
    """A few deterministic raw events behind a fact (first journeys by id, first matching steps)."""
    where, params = scope_where(row)
    match, mparams = _event_match(fact, row["payload"].get("outcomes", []))
    scope = _OPEN_TOO_SCOPE if "estimator" in fact.evidence else _COMPLETED_SCOPE
    sql = _SAMPLE_SQL.format(scope=scope.format(where=where), match=match)
    dropoff = row["payload"].get("dropoff_outcome")
    rows = con.execute(sql, [dropoff, *params, row["journey"], *mparams, k]).fetchall()
    return [{"event_id": r[0], "event_name": r[1], "ts": r[2], "in_events": bool(r[3])} for r in rows]


def snapshot_metrics(row: Mapping[str, Any], fact: Fact) -> dict[str, Any]:
    """The stored snapshot's metrics for the states a fact touches (engine.snapshot's JSON shape)."""
    payload = row["payload"]
    head = {"snapshot_id": row["snapshot_id"], "scope": row["scope"], "journey": row["journey"],
            "window": payload.get("window"), "segment": payload.get("segment"), "release": payload.get("release"),
            "journeys": payload.get("journeys"), "completed": payload.get("completed"),
            "censored": payload.get("censored"), "outcome_counts": payload.get("outcome_counts")}
    states = {e.partition(":")[2] for e in fact_entities(fact) if e.startswith("state:")}
    try:
        from engine.snapshot import Snapshot

        metrics = Snapshot.from_payload(payload).to_metrics_json()
        head["states"] = [s for s in metrics["states"] if s["state"] in states]
        head["transitions"] = [t for t in metrics["transitions"] if t["from"] in states]
    except (ImportError, KeyError, JourneyGraphError) as exc:  # metrics unavailable: counts only
        head["metrics_error"] = str(exc)
        head["transitions"] = [t for t in payload.get("transitions", []) if t["from"] in states]
    return head


def _fact(store: Any, bundle: Mapping[str, Any], fact_id: str) -> Fact:
    """A cited fact from the store, else from the bundle (which holds the exact facts narrated)."""
    fact = store.get(fact_id) if store is not None else None
    if fact is not None:
        return fact
    for item in bundle.get("facts", []):
        if item.get("fact_id") == fact_id:
            return Fact.from_dict(item)
    raise NotFound(f"fact {fact_id} is cited but is neither in the fact store nor in the bundle; "
                            "re-run `journeygraph run` to rebuild the store")


def trace_fact(fact: Fact, *, con: Any, ctx: Ctx) -> dict[str, Any]:
    """One fact's chain: evidence, snapshot metrics, recount of the snapshot, recomputed numbers, events."""
    row = snapshot_row(con, fact.provenance.snapshot_id)
    return {
        "fact": fact.to_dict(), "summary": summarize(fact),
        "snapshot": snapshot_metrics(row, fact),
        "snapshot_recount": compare_snapshot(con, row["snapshot_id"], ctx),
        "recompute": recompute_fact(fact, con=con, ctx=ctx),
        "events": sample_events(con, fact, row),
    }


def _verify(bundle: Mapping[str, Any], narrative: Mapping[str, Any]) -> dict[str, Any]:
    if not bundle or not bundle.get("facts"):
        return {"ok": None, "failures": [], "note": "the insight holds no bundle (ungrounded)"}
    from narrator import checker

    result = checker.check(bundle, narrative)
    return {"ok": result.ok, "failures": [f"{f.rule}: {f.span}" for f in result.failures],
            "numbers_checked": result.numbers_checked}


def trace(insight_id: str, *, con: Any, store: Any, cfg: Any = None, ctx: Ctx | None = None) -> dict[str, Any]:
    """The full audit trail of an insight as JSON-ready data (see the module docstring).

    `ctx` (narrator.recompute.make_context) may be shared across calls so each snapshot is recounted once.
    A notice carried from the run before (engine.carried) is traced against that run's data and config."""
    insight = load_insight(con, insight_id)
    with carried.reader(con, insight["insight_id"]) as held:
        if held is not None:
            return _trace(insight, held.con, store, make_context(held.con, held.config() or cfg))
        return _trace(insight, con, store, ctx or make_context(con, cfg))


def _trace(insight: Mapping[str, Any], con: Any, store: Any, ctx: Ctx) -> dict[str, Any]:
    bundle, narrative = insight.get("bundle") or {}, insight.get("narrative") or {}
    sentences = _sentences(narrative)
    order = list(dict.fromkeys([*(fid for s in sentences for fid in s["fact_ids"]), *insight.get("fact_ids", [])]))
    facts = [trace_fact(_fact(store, bundle, fid), con=con, ctx=ctx) for fid in order]
    numbers = sum(f["recompute"]["numbers"] for f in facts)
    matched = sum(f["recompute"]["matched"] for f in facts)
    return {
        "insight_id": insight["insight_id"], "finding_id": insight.get("finding_id"),
        "status": insight.get("status"), "backend": insight.get("backend"),
        "finding": bundle.get("finding"), "sentences": sentences, "facts": facts,
        "recomputation": {"facts": len(facts), "facts_ok": sum(1 for f in facts if f["recompute"]["ok"]),
                          "numbers": numbers, "matched": matched, "share": matched / numbers if numbers else 1.0},
        "verify": _verify(bundle, narrative), "bundle": bundle, "narrative": narrative,
    }


def _entry_line(e: Mapping[str, Any]) -> str:
    mark = {"match": "ok", "family": "ok (BH family: p <= q <= 1)", "mismatch": "MISMATCH",
            "not_recomputed": "not recomputed"}[e["status"]]
    rec = "" if e["recomputed"] is None else f"  recomputed {e['recomputed']}"
    return f"      {e['key']:<26} stored {e['stored']}{rec}  {mark}"


def render_text(data: Mapping[str, Any]) -> str:
    """CLI text form: one block per sentence, each fact with its numbers, snapshot and events."""
    f = data.get("finding") or {}
    out = [(f"insight {data['insight_id']}  finding {data['finding_id']} ({f.get('type', '?')})  "
            f"status {data['status']}  backend {data['backend']}")]
    v = data["verify"]
    out.append("verify: " + ("ok" if v["ok"] else "n/a" if v["ok"] is None else "FAILED " + "; ".join(v["failures"])))
    by_id = {x["fact"]["fact_id"]: x for x in data["facts"]}
    shown: set[str] = set()
    for s in data["sentences"]:
        out.append(f"\n[{s['index']}] {s['text']}")
        for fid in s["fact_ids"]:
            if fid in shown:
                out.append(f"    fact {fid}  (traced above)")
            else:
                out.extend(_fact_lines(by_id[fid]) if fid in by_id else [f"    fact {fid}: not found"])
                shown.add(fid)
    r = data["recomputation"]
    out.append(f"\nrecomputation: {r['matched']}/{r['numbers']} numbers match ({100.0 * r['share']:.1f} %), "
               f"{r['facts_ok']}/{r['facts']} facts fully recomputed")
    return "\n".join(out) + "\n"


def _recount_word(x: Mapping[str, Any]) -> str:
    fields = x["snapshot_recount"]["fields"]
    bad = sorted(k for k, v in fields.items() if not v["match"])
    return "all match" if not bad else "differ in " + ", ".join(bad)


def _fact_lines(x: Mapping[str, Any]) -> list[str]:
    fact, snap, rec = x["fact"], x["snapshot"], x["recompute"]
    window = snap.get("window") or {}
    lines = [f"    fact {fact['fact_id']}  {fact['subject']} {fact['predicate']} {fact['object']}",
             f"      {x['summary']}",
             f"    snapshot {snap['snapshot_id']}  scope {snap['scope']}  window {window.get('start')} .. "
             f"{window.get('end')}  completed {snap.get('completed')}  counts recomputed: " + _recount_word(x)]
    lines += [_entry_line(e) for e in rec["entries"]]
    if rec["error"]:
        lines.append(f"      error: {rec['error']}")
    ids = ", ".join(e["event_id"] for e in x["events"]) or "(none)"
    lines.append(f"    events: {ids}")
    return lines


def write_bundle(data: Mapping[str, Any], path: str | Path, err: TextIO | None = None) -> Path:
    """The auditor's file for `verify --bundle`: the exact bundle narrated, the narrative and the insight id.

    Written as canonical JSON (sorted keys), so the same insight always gives the same bytes."""
    from ontology.model import canonical_json

    if not data.get("bundle"):
        raise JourneyGraphError(f"insight {data.get('insight_id')} holds no bundle (it was not narrated); "
                                "nothing to verify")
    out = Path(path)
    body = {"insight_id": data.get("insight_id"), "bundle": data["bundle"], "narrative": data.get("narrative") or {}}
    out.write_text(canonical_json(body) + "\n", encoding="utf-8")
    if err is not None:
        print(f"bundle written to {out}; check any text of this insight with "
              f"`journeygraph verify --bundle {out} --narrative TEXT_OR_FILE`", file=err)
    return out
