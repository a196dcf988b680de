"""`run` leaves through os._exit (engine.app.cli.console_main): its output must be whole and its files closed first."""

from __future__ import annotations

import json
from pathlib import Path

from engine.workspace import Workspace
from tests.e2e.conftest import DEMO_CONFIG, run_cli


def test_run_output_is_whole_and_the_workspace_checkpointed_before_the_fast_exit(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = run_cli("run", "-c", str(DEMO_CONFIG), "-w", str(ws), "--format", "json")
    summary = json.loads(proc.stdout)  # the whole JSON document reached the pipe
    assert not (ws / "journeygraph.duckdb.wal").exists()  # nothing left for a replay: closed, not abandoned
    con = Workspace.open(ws, read_only=True, create=False).con  # events: a view over the workspace's Parquet
    try:
        assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == summary["accepted"]
        assert con.execute("SELECT count(*) FROM snapshots").fetchall()[0][0] == summary["snapshots"]
    finally:
        con.close()
    # a failing run exits the normal way, with the one-line error and a non-zero code
    failed = run_cli("run", str(tmp_path / "missing.jsonl"), "-w", str(ws), check=False)
    assert failed.returncode == 2 and failed.stderr.startswith("error: source")
