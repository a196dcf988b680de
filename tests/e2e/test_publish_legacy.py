"""Workspaces written in place by 0.1 keep working under publishing (issue 18, defects 2 and 3).

0.1 wrote `journeygraph.duckdb` directly: no `workspace_config` table, `deliveries` inside it, and a
run killed mid-way could leave a write-ahead log beside it. Real files and processes.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb

from engine.app import views, watch
from engine.config import Webhook, from_dict
from engine.workspace import Workspace
from tests.e2e.conftest import ROOT, run_cli
from tests.e2e.publishing import feed_ids, inputs, outputs

LEAVE_WAL = """
import os, sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("PRAGMA disable_checkpoint_on_shutdown")
con.execute("SET checkpoint_threshold = '1GB'")
con.execute("DROP TABLE workspace_config")  # 0.1 kept the config in config.json only
con.execute("CREATE TABLE legacy_marker AS SELECT 42 AS v")
os._exit(0)  # like a kill: the last writes are only in the write-ahead log
"""


def _as_written_by_0_1(tmp_path: Path) -> tuple[Path, Path, Path, tuple[str, str]]:
    a, b, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    shown = outputs(ws)
    subprocess.run([sys.executable, "-c", LEAVE_WAL, str(ws / "journeygraph.duckdb")], cwd=ROOT, check=True, timeout=300)
    assert (ws / "journeygraph.duckdb.wal").is_file()
    return ws, b, cfg, shown


def test_an_old_workspace_with_a_log_reads_as_it_was(tmp_path: Path) -> None:
    ws, _, _, shown = _as_written_by_0_1(tmp_path)
    assert outputs(ws) == shown  # config from config.json, the log folded in first


def test_a_run_over_an_old_workspace_keeps_what_its_log_held(tmp_path: Path) -> None:
    ws, b, cfg, shown = _as_written_by_0_1(tmp_path)
    old_feed = feed_ids(shown[0])
    run_cli("run", str(b), "-c", str(cfg), "-w", str(ws))  # the run folds the log in before copying
    assert not (ws / "journeygraph.duckdb.wal").exists()
    con = duckdb.connect(str(ws / "journeygraph.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT v FROM legacy_marker").fetchall() == [(42,)]  # the logged write was kept
        assert con.execute("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        con.close()
    assert feed_ids(outputs(ws)[0]) != old_feed


def test_deliveries_an_old_workspace_recorded_are_not_sent_again(tmp_path: Path) -> None:
    a, _, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    items = views.feed_items(str(ws))
    hook = Webhook(url="http://127.0.0.1:9/hook")  # nothing listens: a POST would be reported failed
    old = Workspace.open(ws, create=False)  # written in place, as 0.1 did
    try:
        old.con.execute(watch._DELIVERIES)
        old.con.executemany("INSERT INTO deliveries VALUES (?, ?, ?, ?)",
                            [[hook.url, watch.delivery_key(i), i["insight_id"], 1.0] for i in items])
    finally:
        old.close()
    reports = watch.deliver_pending(from_dict({"webhooks": [{"url": hook.url}]}), str(ws))
    assert [(r.delivered, r.failed) for r in reports] == [((), ())] and items
    log = duckdb.connect(str(ws / watch.DELIVERIES_DB), read_only=True)
    try:
        assert log.execute("SELECT count(*) FROM deliveries").fetchall() == [(len(items),)]
    finally:
        log.close()
