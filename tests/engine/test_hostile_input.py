"""Hostile input: one bad row is quarantined with its reason, never the whole run, file or glob (issue 18)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from engine import pipeline
from tests.engine.hostile import (
    base_events,
    config,
    dumps,
    engine_buckets,
    recount,
    write_lines,
)

OUT_OF_RANGE = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "-000001-01-01T00:00:00Z",
                "+275760-09-13T00:00:00Z", "1800-01-01T00:00:00Z", "2250-01-01T00:00:00Z"]


def _run(tmp_path: Path, lines: list[str | bytes], name: str = "e.jsonl") -> tuple[dict, Path]:
    src = write_lines(tmp_path / name, lines)
    ws = tmp_path / "ws"
    return pipeline.run(str(src), workspace=str(ws), cfg=config(), quiet=True), ws


def _reconciles(summary: dict) -> bool:
    return summary["events_read"] == (summary["accepted"] + summary["quarantined"]["total"] + summary["duplicates"]
                                      + summary["bots_filtered"] + summary["late_rejected"])


@pytest.mark.parametrize("stamp", OUT_OF_RANGE)
def test_an_out_of_range_timestamp_is_quarantined_not_fatal(tmp_path, stamp, caplog) -> None:
    events = base_events()
    bad = json.dumps({"event_id": "tx", "user_id": "tu", "event_name": "signup", "timestamp": stamp})
    with caplog.at_level(logging.WARNING, logger="engine.ingest"):
        summary, ws = _run(tmp_path, dumps(events) + [bad])
    assert summary["quarantined"]["by_reason"] == {"bad_timestamp": 1}
    assert summary["accepted"] == len(events) and summary["snapshots"] > 0
    assert "1900-01-01 to 2200-01-01" in caplog.text  # the warning names the plausible range
    assert engine_buckets(ws / "journeygraph.duckdb") == recount(tmp_path / "e.jsonl")


def test_snapshot_times_round_trip_for_every_year_python_holds() -> None:
    from datetime import datetime

    from engine.snapshot import iso
    from engine.snapshot_store import _ts

    for when in (datetime(1, 1, 1), datetime(999, 3, 4, 5, 6, 7, 8), datetime(9999, 12, 31, 23, 59, 59)):
        assert _ts(iso(when)) == when
    with pytest.raises(TypeError, match="quarantine it"):
        iso("infinity")  # type: ignore[arg-type]


BAD_BYTES = [b'{"event_id":"x1","user_id":"u1","event_name":"sig\xffnup","timestamp":"2026-01-05T00:00:00Z"}',
             b"\xc3\x28", b'{"user_id":"\xed\xa0\x80","event_name":"a","timestamp":"2026-01-05T00:00:00Z"}']


@pytest.mark.parametrize("block", [None, 200], ids=["default_block", "small_blocks"])
def test_invalid_utf8_costs_its_line_only(tmp_path, caplog, monkeypatch, block) -> None:
    from engine import jsonl_lines

    if block:
        monkeypatch.setattr(jsonl_lines, "BLOCK_BYTES", block)
    events = base_events()
    lines: list[str | bytes] = dumps(events[:100]) + BAD_BYTES[:2] + dumps(events[100:]) + BAD_BYTES[2:]
    with caplog.at_level(logging.WARNING, logger="engine.ingest"):
        summary, ws = _run(tmp_path, lines)
    assert summary["quarantined"]["by_reason"] == {"bad_encoding": 3}
    assert summary["accepted"] == len(events) and _reconciles(summary)
    assert engine_buckets(ws / "journeygraph.duckdb") == recount(tmp_path / "e.jsonl")
    assert "not valid UTF-8 (first: line 101)" in caplog.text
    import duckdb

    con = duckdb.connect(str(ws / "journeygraph.duckdb"), read_only=True)
    assert con.execute("SELECT line, raw FROM quarantine ORDER BY line").fetchall()[:2] == [
        (101, BAD_BYTES[0].decode("utf-8", "replace")), (102, "\ufffd(")]
    con.close()


def test_a_glob_with_one_bad_file_reads_the_good_ones(tmp_path) -> None:
    events = base_events()
    write_lines(tmp_path / "a.jsonl", dumps(events[:200]))
    write_lines(tmp_path / "b.jsonl", dumps(events[200:]))
    write_lines(tmp_path / "c.jsonl", [BAD_BYTES[1]])
    summary = pipeline.run(str(tmp_path / "*.jsonl"), workspace=str(tmp_path / "ws"), cfg=config(), quiet=True)
    assert (summary["accepted"], summary["quarantined"]["by_reason"]) == (len(events), {"bad_encoding": 1})


@pytest.mark.parametrize("block", [None, 64], ids=["default_block", "tiny_blocks"])
def test_a_byte_order_mark_does_not_cost_the_first_event(tmp_path, monkeypatch, block) -> None:
    from engine import jsonl_lines

    if block:
        monkeypatch.setattr(jsonl_lines, "BLOCK_BYTES", block)
    events = base_events()
    lines = dumps(events)
    summary, _ = _run(tmp_path, [b"\xef\xbb\xbf" + lines[0].encode()] + lines[1:])
    assert (summary["accepted"], summary["quarantined"]["total"]) == (len(events), 0)
