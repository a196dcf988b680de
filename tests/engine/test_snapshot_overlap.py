"""engine.snapshot reads the steps (engine.step_arrays.reader) on a second thread while the connection makes the
data ends and classes, and makes the step counts on one while the connection runs the queries that do not read
them: the snapshots are the same whichever side finishes first, and an error on either side fails the build."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import snapshot, snapshot_progress, step_arrays
from engine.snapshot import build_snapshots
from tests.engine.test_snapshot import CFG, DATA_END, JOURNEY, hand_db

WAIT_S = 20  # how long one side waits for the other (never reached when they overlap)


def _payloads(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [s.payload_json for s in build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0", data_end=DATA_END)]


def _left(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("""SELECT name FROM (SELECT table_name AS name FROM duckdb_tables() UNION ALL
                          SELECT view_name FROM duckdb_views()) WHERE name LIKE '\\_jg\\_%' ESCAPE '\\'""").fetchall()


def _build_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("jg-step-counts", "jg-step-read"))]


@pytest.fixture()
def con(tmp_path) -> duckdb.DuckDBPyConnection:
    return hand_db(tmp_path / "o.duckdb")


def test_the_step_counts_run_beside_the_queries(con, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, str] = {}
    count_steps, find = snapshot.step_counts.count_steps, snapshot.sealed_scopes.find

    def counting(*a: Any, **k: Any) -> Any:
        threads["counts"] = threading.current_thread().name
        return count_steps(*a, **k)

    def finding(*a: Any, **k: Any) -> Any:
        threads["sealed"] = threading.current_thread().name
        return find(*a, **k)

    monkeypatch.setattr(snapshot.step_counts, "count_steps", counting)
    monkeypatch.setattr(snapshot.sealed_scopes, "find", finding)
    _payloads(con)
    assert threads["sealed"] == threading.current_thread().name
    assert threads["counts"].startswith("jg-step-counts")


@pytest.mark.parametrize("last", ["counts", "queries"])
def test_the_snapshots_do_not_depend_on_which_side_finishes_first(con, monkeypatch: pytest.MonkeyPatch,
                                                                  last: str) -> None:
    """Each side is held until the other is done (the counts until the incidence, the last query before the
    wait, is made; or the incidence until the counts are made): the same payloads as a build left alone."""
    alone = _payloads(con)
    counted, queried, waited = threading.Event(), threading.Event(), []
    count_steps, incidence = snapshot.step_counts.count_steps, snapshot.progress.incidence_by_scope

    def counting(*a: Any, **k: Any) -> Any:
        if last == "counts":
            waited.append(queried.wait(WAIT_S))
        try:
            return count_steps(*a, **k)
        finally:
            counted.set()

    def incidence_by_scope(*a: Any, **k: Any) -> Any:
        if last == "queries":
            waited.append(counted.wait(WAIT_S))
        try:
            return incidence(*a, **k)
        finally:
            queried.set()

    monkeypatch.setattr(snapshot.step_counts, "count_steps", counting)
    monkeypatch.setattr(snapshot.progress, "incidence_by_scope", incidence_by_scope)
    assert _payloads(con) == alone
    assert waited == [True]  # the held side saw the other finish first


@pytest.mark.parametrize("side", ["counts", "queries"])
def test_an_error_on_either_side_fails_the_build(con, monkeypatch: pytest.MonkeyPatch, side: str) -> None:
    def fail(*a: Any, **k: Any) -> Any:
        raise RuntimeError(f"{side} failed")

    target = (snapshot.step_counts, "count_steps") if side == "counts" else (snapshot.progress, "incidence_by_scope")
    monkeypatch.setattr(*target, fail)
    with pytest.raises(RuntimeError, match=f"{side} failed"):
        _payloads(con)
    assert _build_threads() == []  # the build waited for its thread
    assert _left(con) == []


def test_the_queries_cover_every_query() -> None:
    assert sorted(snapshot._CLASS_QUERIES + snapshot._STEP_QUERIES) == sorted(snapshot._QUERIES)


def test_the_steps_are_read_beside_the_classes(con, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: dict[str, str] = {}
    arrays, classes = step_arrays._arrays, snapshot._classes

    def reading(*a: Any, **k: Any) -> Any:
        threads["read"] = threading.current_thread().name
        return arrays(*a, **k)

    def making(*a: Any, **k: Any) -> Any:
        threads["classes"] = threading.current_thread().name
        return classes(*a, **k)

    monkeypatch.setattr(step_arrays, "_arrays", reading)
    monkeypatch.setattr(snapshot, "_classes", making)
    _payloads(con)
    assert threads["classes"] == threading.current_thread().name
    assert threads["read"].startswith("jg-step-read")


@pytest.mark.parametrize("last", ["read", "classes"])
def test_the_snapshots_do_not_depend_on_whether_the_steps_or_the_classes_come_first(
        con, monkeypatch: pytest.MonkeyPatch, last: str) -> None:
    """With an events table the data ends do not wait for the steps (else the classes come after them anyway)."""
    con.execute("CREATE TABLE events AS SELECT DISTINCT tenant_id, TIMESTAMP '2026-01-01' AS ts FROM journeys")
    alone = _payloads(con)
    read, made, waited = threading.Event(), threading.Event(), []
    arrays, classes = step_arrays._arrays, snapshot._classes

    def reading(*a: Any, **k: Any) -> Any:
        if last == "read":
            waited.append(made.wait(WAIT_S))
        try:
            return arrays(*a, **k)
        finally:
            read.set()

    def making(*a: Any, **k: Any) -> Any:
        if last == "classes":
            waited.append(read.wait(WAIT_S))
        try:
            return classes(*a, **k)
        finally:
            made.set()

    monkeypatch.setattr(step_arrays, "_arrays", reading)
    monkeypatch.setattr(snapshot, "_classes", making)
    assert _payloads(con) == alone
    assert waited == [True]


def test_an_error_reading_the_steps_fails_the_build(con, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*a: Any, **k: Any) -> Any:
        raise RuntimeError("read failed")

    monkeypatch.setattr(step_arrays, "_arrays", fail)
    with pytest.raises(RuntimeError, match="read failed"):
        _payloads(con)
    assert _build_threads() == []
    assert _left(con) == []


def test_data_ends_read_the_steps_only_when_an_end_is_unknown() -> None:
    """engine.snapshot hands data_ends the steps still being read (a function waiting for them): without events
    the last step times give the end, with events the steps are never waited for."""
    con = duckdb.connect()
    con.execute("CREATE TABLE journeys AS SELECT 'main' AS journey, 'a' AS tenant_id, TIMESTAMP '2026-01-05 10:00' AS end_ts")
    calls: list[int] = []

    def steps() -> step_arrays.StepArrays:
        calls.append(1)
        at = np.array([int(datetime(2026, 1, 5, 11).timestamp() - datetime(1970, 1, 1).timestamp()) * 1_000_000])
        return step_arrays.StepArrays(jix=np.zeros(1, np.int64), state=np.zeros(1, np.int64), names=pa.array(["s"]),
                                      ts=at.astype(np.int64), size=1, journey_ids=pa.array(["j"]))

    assert snapshot_progress.data_ends(con, "main", None, steps) == {"a": datetime(2026, 1, 5, 11)}
    assert calls == [1]
    con.execute("CREATE TABLE events AS SELECT 'a' AS tenant_id, TIMESTAMP '2026-01-05 12:00' AS ts")
    assert snapshot_progress.data_ends(con, "main", None, steps) == {"a": datetime(2026, 1, 5, 12)}
    assert calls == [1]
