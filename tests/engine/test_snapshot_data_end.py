"""A snapshot's data end is the tenant's last event, the rule engine.journeys censors by, also when `events` is a
view over the silver Parquet files (a workspace) rather than a table: the snapshot had fallen back to the last
step, a minute early when the last event is an outcome event, and its recount (engine.resolved, which reads
journey_progress' data end) disagreed on that journey."""

from __future__ import annotations

import json
from pathlib import Path

from engine.app import pipeline
from engine.workspace import Workspace
from tests.engine.hostile import base_events, config_file, dumps, write_lines


def test_all_scope_ends_at_the_last_event_and_its_journey_is_complete(tmp_path: Path) -> None:
    events = base_events(160)
    assert events[-1]["event_name"] == "purchase"  # the last event is a conversion, not a step
    src = write_lines(tmp_path / "events.jsonl", dumps(events))
    pipeline.run(str(src), str(config_file(tmp_path / "c.yaml")), str(tmp_path / "ws"), quiet=True)
    con = Workspace.read(tmp_path / "ws").con
    try:
        views = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views()").fetchall()}
        assert "events" in views  # the case that went wrong: events read through a view
        last_event = con.execute("SELECT strftime(max(ts), '%Y-%m-%dT%H:%M:%SZ') FROM events").fetchall()[0][0]
        progress_end = con.execute("SELECT DISTINCT strftime(data_end, '%Y-%m-%dT%H:%M:%SZ') FROM journey_progress"
                                   ).fetchall()
        payloads = [json.loads(r[0]) for r in con.execute("SELECT payload::VARCHAR FROM snapshots").fetchall()]
    finally:
        con.close()
    everything = next(p for p in payloads if p["scope"] == "all")
    assert everything["window"]["end"] == last_event == events[-1]["timestamp"]
    assert progress_end == [(last_event,)]
