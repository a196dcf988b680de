"""A snapshot's data end is the tenant's last event, the rule engine.journeys censors by, also when `events` is a
view over the silver Parquet files (a workspace) rather than a table: the snapshot had fallen back to the last
step, a minute early when the last event is an outcome event, and its recount (engine.resolved, which reads
journey_progress' data end) disagreed on that journey."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from engine import silver, snapshot_progress, step_arrays
from engine.app import pipeline
from engine.workspace import Workspace
from tests.engine.hostile import base_events, config_file, dumps, write_lines
from tests.engine.test_silver_parts import _fill


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


def test_data_ends_read_from_the_latest_day_files_keep_each_tenants_last_event(tmp_path: Path) -> None:
    """Tenant `a` ends at midnight on the earliest of the tenants' latest days (the bound the day files are read
    from), tenant `b` two days later; both ends are their last events, not a NULL or an earlier day's."""
    con = duckdb.connect(str(tmp_path / "ws.duckdb"))
    silver.attach(con, tmp_path, writable=True)
    _fill(con, [("a", "u1", 0, "12:00:00"), ("a", "u1", 1, "00:00:00"), ("b", "u2", 0, "09:00:00"),
                ("b", "u2", 1, "23:00:00"), ("b", "u2", 3, "08:30:00")])
    silver.persist_events(con)
    assert silver.latest_day(con) == "2026-01-06"  # the files from that day on are read
    con.execute("CREATE TABLE journeys AS SELECT 'main' AS journey, unnest(['a', 'b']) AS tenant_id")
    steps = step_arrays.StepArrays(jix=np.zeros(0, np.int64), state=np.zeros(0, np.int64), names=pa.array([], pa.string()),
                                   ts=np.zeros(0, np.int64), size=0, journey_ids=pa.array([], pa.string()))
    ends = snapshot_progress.data_ends(con, "main", None, steps)
    assert {t: e.isoformat() for t, e in ends.items()} == {"a": "2026-01-06T00:00:00", "b": "2026-01-08T08:30:00"}
