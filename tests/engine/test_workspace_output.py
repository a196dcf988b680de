"""Workspace connections print nothing of DuckDB's own: its progress bar goes to stdout (engine.workspace)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workspace import Workspace

SLOW = "SELECT count(*) FROM range(50000000) t(i) WHERE i % 7 = 3"


def test_a_long_statement_on_a_workspace_connection_draws_no_progress_bar(tmp_path: Path,
                                                                          capfd: pytest.CaptureFixture[str]) -> None:
    """With the bar's delay at 0 every statement would draw it on stdout, as a 10 M-event run's long ones do
    after 2 s; a `run --format json` piped to a file must hold the JSON alone."""
    with Workspace.build(tmp_path / "ws") as ws:
        ws.con.execute("SET progress_bar_time = 0")
        assert ws.con.execute(SLOW).fetchall()[0][0] > 0
    read = Workspace.open(tmp_path / "ws", read_only=True, create=False)
    try:
        read.con.execute("SET progress_bar_time = 0")
        assert read.con.execute(SLOW).fetchall()[0][0] > 0
    finally:
        read.con.close()
    assert capfd.readouterr().out == ""
