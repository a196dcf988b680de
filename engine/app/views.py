"""Read-side of the workspace for the CLI and the HTTP API: feed, snapshots, ask, trace, export, query.

Each function opens the workspace's published database read-only, reads, and
returns plain data (or rendered text); nothing here writes or waits for a run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.workspace import READ_WAIT_S, Workspace
from ontology.errors import BadInput, NotFound


@contextmanager
def _open(workspace: str | None) -> Iterator[Workspace]:
    """The published database, read-only (engine.publish): a run writing meanwhile is neither waited for nor seen."""
    ws = Workspace.read(workspace, wait_s=READ_WAIT_S)
    try:
        yield ws
    finally:
        ws.close()


def _store(ws: Workspace, cfg: Any) -> Any:
    """A reading handle: the embedded store opens read-only so readers never wait on the writer's lock."""
    from ontology.store import open_store

    options: dict[str, Any] = {"allowed_properties": cfg.privacy.allowed_properties}
    if cfg.store.backend == "embedded":
        options["read_only"] = True
    return open_store(cfg.store.backend, cfg.store, ws.path, **options)


@contextmanager
def _session(workspace: str | None) -> Iterator[tuple[Workspace, Any, Any]]:
    """(workspace, its run config, a reading fact store), all closed afterwards."""
    with _open(workspace) as ws:
        cfg = ws.config()
        store = _store(ws, cfg)
        try:
            yield ws, cfg, store
        finally:
            store.close()


# --- feed ------------------------------------------------------------------------------------

def feed_items(workspace: str | None, *, limit: int | None = None, snapshot: str | None = None) -> list[dict[str, Any]]:
    with _open(workspace) as ws:
        rows = ws.con.execute("SELECT item FROM feed ORDER BY rank").fetchall()
    items = [json.loads(r[0]) for r in rows]
    if snapshot:
        items = [i for i in items if i["finding"]["snapshot_id"] == snapshot]
    return items[:limit] if limit else items


def feed(workspace: str | None, *, fmt: str = "text", limit: int | None = None, snapshot: str | None = None) -> str:
    from engine.app import render

    items = feed_items(workspace, limit=limit, snapshot=snapshot)
    context: dict[str, Any] = {}
    if fmt == "html":  # the metrics the run stored: the page solves no chain (issue #18 defect 5)
        data = _default_metrics(workspace)
        context = {"snapshot": snapshot_payload(workspace, data["snapshot_id"], None), "metrics": data}
    if fmt in ("text", "md", "html"):
        context["power"] = power(workspace)
        if not items:  # never a silent empty feed: what was measured and why nothing shows (render.status)
            context["empty"] = _why_empty(workspace)
    return render.render(items, fmt, **context)


def why_empty(workspace: str | None) -> dict[str, Any]:
    """What an empty feed means (engine/app/render/status.py): per journey the numbers and the same sentences
    the text feed prints, for the API and the web page."""
    from engine.app.render.status import TITLE, lines

    rows = _why_empty(workspace)
    return {"title": TITLE, "journeys": rows, "lines": lines(rows)}


def _why_empty(workspace: str | None) -> list[dict[str, Any]]:
    from engine.app.render.status import explain

    with _open(workspace) as ws:
        if not ws.has_table("snapshots"):
            return []
        cfg = ws.config()
        rows = ws.con.execute("SELECT payload FROM snapshots WHERE scope = 'all' QUALIFY row_number() OVER "
                              "(PARTITION BY tenant_id, journey ORDER BY window_end DESC, snapshot_id) = 1 "
                              "ORDER BY tenant_id, journey").fetchall()
    return explain([json.loads(r[0]) for r in rows], cfg)


def power(workspace: str | None) -> list[dict[str, Any]]:
    """The detection-power map (detectors.regression.power_map_for) of the latest run, from stored snapshots.

    The latest run's snapshots are the unsegmented period and release snapshots built with the config of
    the newest all-data snapshot, one per window (the one of the newest input when a window was rebuilt).
    """
    from detectors.regression import power_map_for
    from engine import snapshot_store
    from ontology.model import Finding

    with _open(workspace) as ws:
        if not ws.has_table("snapshots"):
            return []
        cfg = ws.config()
        ids = [r[0] for r in ws.con.execute(_POWER_SNAPSHOTS).fetchall()]
        snaps = [snapshot_store.load_snapshot(ws.con, sid) for sid in ids]
        found = [Finding.from_dict(json.loads(r[0])) for r in ws.con.execute(
            "SELECT payload FROM findings WHERE type = 'regression' ORDER BY finding_id").fetchall()]
    return power_map_for(snaps, cfg, found)


_POWER_SNAPSHOTS = """
WITH latest AS (SELECT payload->>'config_hash' AS config_hash, payload->>'input_hash' AS input_hash
                FROM snapshots WHERE scope = 'all' ORDER BY window_end DESC, snapshot_id LIMIT 1)
SELECT s.snapshot_id FROM snapshots s, latest
WHERE s.segment_key IS NULL AND s.scope IN ('period', 'release_before', 'release_after')
  AND s.payload->>'config_hash' = latest.config_hash
QUALIFY row_number() OVER (PARTITION BY s.tenant_id, s.journey, s.scope, s.release, s.window_start
                           ORDER BY (s.payload->>'input_hash' = latest.input_hash) DESC, s.window_end DESC,
                                    s.snapshot_id) = 1
ORDER BY s.snapshot_id"""


def insight(workspace: str | None, insight_id: str) -> dict[str, Any] | None:
    with _open(workspace) as ws:
        row = ws.con.execute("SELECT payload FROM insights WHERE insight_id = ?", [insight_id]).fetchone()
        item = ws.con.execute("SELECT item FROM feed WHERE insight_id = ?", [insight_id]).fetchone()
    if row is None:
        return None
    data = json.loads(row[0])
    if item is not None:
        data["feed_item"] = json.loads(item[0])
    return data


def facts(workspace: str | None, *, entity: str | None = None, predicate: str | None = None,
          snapshot_id: str | None = None, limit: int = 200) -> list[dict[str, Any]]:

    with _session(workspace) as (_, _, store):
        out = []
        for fact in store.facts(entity=entity, predicate=predicate, snapshot_id=snapshot_id):
            out.append(fact.to_dict())
            if len(out) >= limit:
                break
        return out


# --- snapshots -------------------------------------------------------------------------------

def snapshots(workspace: str | None) -> list[dict[str, Any]]:
    from engine import snapshot_store

    with _open(workspace) as ws:
        return snapshot_store.list_snapshots(ws.con)


def segments(workspace: str | None) -> list[str]:
    """The segments ('key=value') the workspace's snapshots cover, sorted."""
    with _open(workspace) as ws:
        if not ws.has_table("snapshots"):
            return []
        rows = ws.con.execute("SELECT DISTINCT segment_key || '=' || segment_value FROM snapshots "
                              "WHERE segment_key IS NOT NULL ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def snapshots_text(rows: list[dict[str, Any]]) -> str:
    return table_text(rows)


def snapshot_payload(workspace: str | None, snapshot_id: str | None, journey: str | None) -> dict[str, Any]:
    from engine import snapshot_store

    with _open(workspace) as ws:
        if snapshot_id is None:
            snapshot_id = _default_snapshot_id(ws, journey)
        snap = snapshot_store.load_snapshot(ws.con, snapshot_id)
    return snap.payload


def _default_snapshot_id(ws: Workspace, journey: str | None) -> str:
    rows = ws.con.execute(
        "SELECT snapshot_id, journey FROM snapshots WHERE scope = 'all' AND (? IS NULL OR journey = ?) "
        "ORDER BY journey, window_end DESC, snapshot_id",
        [journey, journey],
    ).fetchall()
    if not rows:
        raise NotFound(f"no all-data snapshot{' for journey ' + journey if journey else ''} in the workspace; run `journeygraph run` first")
    if journey is None:

        first = ws.config().journeys[0].name
        rows = [r for r in rows if r[1] == first] or rows
    return rows[0][0]


def snapshot(workspace: str | None, *, snapshot_id: str | None = None, journey: str | None = None,
             intervals: int | None = None, level: float = 0.95, max_seconds: float | None = None) -> dict[str, Any]:
    """`snapshot --format json`: the metrics the run stored (engine.state_metrics), computed on demand for an
    older workspace; with `intervals` (replicates), bootstrap intervals too (engine.uncertainty).

    `max_seconds` caps the estimated work of whatever must be computed here (None: no cap, the CLI)."""
    from engine import snapshot_store, state_metrics, uncertainty

    with _open(workspace) as ws:
        sid = snapshot_id or _default_snapshot_id(ws, journey)
        snap = snapshot_store.load_snapshot(ws.con, sid)
        data = state_metrics.load(ws.con, snap.snapshot_id)
    if data is None:
        state_metrics.check_work(snap.snapshot_id, len(snap.payload["states"]), max_seconds)
        data = state_metrics.compute(snap)
    if intervals:
        found = uncertainty.bootstrap(snap.metrics, seed=uncertainty.seed_for(sid), replicates=intervals, level=level,
                                      max_seconds=max_seconds)
        data["intervals"] = uncertainty.to_json(found, snap.metrics.states, snap.payload.get("model_check"))
    return data


def _default_metrics(workspace: str | None) -> dict[str, Any]:
    return snapshot(workspace)  # (feed's `snapshot` argument hides this function's name there)


GRAPH_STATES = 150  # the graph view shows at most this many states; the rarest are grouped into "other"


def graph(workspace: str | None, *, journey: str | None = None, max_states: int = GRAPH_STATES,
          max_seconds: float | None = None) -> dict[str, Any]:
    """`/api/graph`: the default snapshot's stored metrics, its rarest states grouped into one "other" node,
    and the journey graph laid out (engine.app.render.layout), so the page draws what the HTML feed draws."""
    from engine import snapshot_store
    from engine.app.render.layout import graph_input, layout
    from engine.state_metrics import group_rare

    data = group_rare(snapshot(workspace, journey=journey, max_seconds=max_seconds), max_states)
    with _open(workspace) as ws:
        conversion = snapshot_store.load_snapshot(ws.con, data["snapshot_id"]).conversion
    data["layout"] = layout(graph_input(data, conversion))
    return data


def snapshot_text(data: dict[str, Any]) -> str:
    head = f"snapshot {data['snapshot_id']}  journey {data['journey']}  window {data['window']}\n"
    head += f"journeys {data['journeys']}  censored {data['censored']}\n\n"
    rows = []
    for s in data["states"]:
        rows.append({
            "state": s["state"], "reach": s["reach"], "visits": s["visits_mean"], "exit": s["exit_probability"],
            "steps": s["expected_steps"],
            **{f"B[{k}]": v for k, v in sorted(s["absorption"].items())},
            **{f"removal[{k}]": v for k, v in sorted(s["removal_effect"].items())},
        })
    return head + table_text(rows) + _intervals_text(data.get("intervals"))


def _intervals_text(block: dict[str, Any] | None) -> str:
    """The bootstrap block as a second table: interval of B and of the removal effect, per outcome, and the rank."""
    if not block:
        return ""
    head = (f"\n{block['level']:.0%} intervals, {block['replicates']} bootstrap replicates "
            f"({block['failed_replicates']} failed); first-order chain assumed\n")
    notes = "".join(f"  note: {n}\n" for n in block["notes"])
    if block["states"] is None:
        return head + notes + "no intervals: too many redraws could not be solved\n"
    fmt = lambda pair: "" if pair is None else f"[{pair[0]:.4f}, {pair[1]:.4f}]"
    outcomes = sorted(next((s["absorption"] for s in block["states"] if s["absorption"]), {}))
    rows = []
    for s in block["states"]:
        rank = s["removal_rank"]
        rows.append({
            "state": s["state"], "n_out": s["transitions_out"],
            **{f"B[{o}]": fmt((s["absorption"] or {}).get(o)) for o in outcomes},
            **{f"removal[{o}]": fmt((s["removal_effect"] or {}).get(o)) for o in outcomes},
            "rank": "" if rank is None else f"{rank['observed']} ({rank['interval'][0]}-{rank['interval'][1]}), "
                                            f"first in {rank['share_ranked_first']:.0%}",
        })
    return head + table_text(rows) + notes


# --- detectors, ask, trace -------------------------------------------------------------------

def detectors() -> list[dict[str, Any]]:
    from detectors.registry import describe

    return describe()


def detectors_text(rows: list[dict[str, Any]]) -> str:
    out = []
    for d in rows:
        out.append(f"{d['name']}@{d['version']}  {d['description']}")
        for key, value in sorted(d.get("thresholds", {}).items()):
            out.append(f"    {key} = {value}")
    return "\n".join(out) + "\n"


def ask(workspace: str | None, question: str) -> dict[str, Any]:
    from narrator.ask import ask as ask_question

    with _session(workspace) as (ws, cfg, store):
        return ask_question(question, con=ws.con, store=store, cfg=cfg)


def ask_text(data: dict[str, Any]) -> str:
    from narrator.ask import render_text

    return render_text(data)


def verify(bundle: dict[str, Any], narrative: Any) -> dict[str, Any]:
    """Check a narrative against a bundle (the checker plus the bundle's grounding), as plain data.
    An `ask` answer's bundle (kind "ask") is checked without the rules of a finding's narrative."""
    if bundle.get("kind") == "ask":
        from narrator.ask import verify_answer

        return verify_answer(bundle, narrative)
    from narrator.checker import check
    from narrator.grounding import grounding_issues

    result = check(bundle, narrative).to_dict()
    issues = [{"rule": i.rule, "where": i.where, "message": i.message} for i in grounding_issues(bundle, min_n=0)]
    result["grounding_issues"] = issues
    result["ok"] = bool(result["ok"]) and not issues
    return result


def trace(workspace: str | None, insight_id: str) -> dict[str, Any]:
    from narrator.trace import trace as trace_insight

    with _session(workspace) as (ws, cfg, store):  # the config published with the run, not config.json
        return trace_insight(insight_id, con=ws.con, store=store, cfg=cfg)


def trace_text(data: dict[str, Any]) -> str:
    from narrator.trace import render_text

    return render_text(data)


# --- graph export and query ------------------------------------------------------------------

def export(workspace: str | None, *, fmt: str) -> str:
    from ontology import rdf

    with _session(workspace) as (_, _, store):
        return rdf.export(store, fmt)


def query(workspace: str | None, *, sparql: str | None = None, cypher: str | None = None) -> list[dict[str, Any]]:

    with _session(workspace) as (_, cfg, store):
        if sparql is not None:
            if cfg.store.backend != "embedded":
                raise BadInput("--sparql needs store.backend: embedded; use --cypher for Neo4j")
            from ontology import rdf

            return rdf.sparql(store, sparql)
        if cfg.store.backend != "neo4j":
            raise BadInput("--cypher needs store.backend: neo4j; use --sparql on the embedded store")
        return store.cypher(cypher, {})


# --- text helpers ----------------------------------------------------------------------------

def table_text(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    cols = list(rows[0].keys())
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def run_summary_text(summary: dict[str, Any]) -> str:
    q = summary["quarantined"]
    q_total = q["total"] if isinstance(q, dict) else q
    lines = [
        f"events read   {summary['events_read']}",
        f"  accepted    {summary['accepted']}",
        f"  quarantined {q_total}" + (f"  {json.dumps(q.get('by_reason', {}), sort_keys=True)}" if isinstance(q, dict) else ""),
        f"  duplicates  {summary['duplicates']}",
        f"  bots        {summary['bots_filtered']}",
        f"  late        {summary['late_rejected']}",
        f"actors {summary['actors']}  journeys {summary['journeys']}  censored {summary['censored']}",
        f"snapshots {summary['snapshots']}  findings {summary['findings']}  facts {summary['facts']}  insights {summary['insights']}",
        f"{summary['seconds']} s",
    ]
    for note in summary.get("inferred", []):
        lines.append(f"inferred: {note}")
    for note in summary.get("notes", []):
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"
