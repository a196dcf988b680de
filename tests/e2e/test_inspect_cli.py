"""`journeygraph inspect`, `run` with nothing accepted, and `run` in a folder holding a journeygraph.yaml."""

from __future__ import annotations

from pathlib import Path

from engine.config import load_config
from tests.e2e.conftest import ROOT, run_cli

OTTO = ROOT / "fixtures" / "real" / "otto_train_20_sessions.jsonl"


def test_inspect_prints_format_mapping_range_and_guesses_then_run_uses_the_written_yaml(tmp_path: Path) -> None:
    out = run_cli("inspect", str(OTTO), "--write", cwd=tmp_path).stdout
    assert "one line per session with a list `events`" in out and "user_id<-session" in out
    assert "time range 2022-07-31T22:00:00Z .. 2022-08-28T21:59:57Z" in out
    assert "actors 20, distinct events 3" in out
    assert "proposed conversion: 'orders' (its name says an outcome" in out
    written = tmp_path / "journeygraph.yaml"
    cfg = load_config(written)
    assert cfg.source == str(OTTO.resolve()) and cfg.journeys[0].conversion_outcome == "orders"
    assert cfg.normalize.fields == (("event_name", "type"), ("timestamp", "ts"), ("user_id", "session"))
    assert cfg.normalize.timestamp_unit == "ms"
    summary = run_cli("run", "-w", str(tmp_path / "ws"), cwd=tmp_path).stdout  # no EVENTS, no -c
    assert "events read   862" in summary and "accepted    862" in summary


def test_run_with_nothing_accepted_shows_counts_rejected_rows_and_inspect(tmp_path: Path) -> None:
    bad = tmp_path / "cols.csv"
    bad.write_text("who,what,when_it_was\n" + "".join(f"u{i},click,sometime\n" for i in range(5)))
    proc = run_cli("run", str(bad), "-w", str(tmp_path / "ws"), check=False)
    assert proc.returncode == 2
    err = proc.stderr
    assert "no accepted events: read 5 rows; quarantined 5 (missing_timestamp 5)" in err
    assert "columns not recognised (what, when_it_was, who)" in err
    assert err.count("cols.csv line ") == 3 and "cols.csv line 2: missing_timestamp:" in err
    assert "journeygraph inspect FILE" in err


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli("run", str(empty), "-w", str(tmp_path / "ws"), check=False)
    assert proc.returncode == 2 and "read 0 rows" in proc.stderr and "no rows (an empty file?)" in proc.stderr
