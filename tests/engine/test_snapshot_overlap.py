"""engine.snapshot makes the step counts on a second thread while the connection runs the queries that do not
read them: the snapshots are the same whichever side finishes first, and an error on either side fails the build."""

from __future__ import annotations

import threading
from typing import Any

import duckdb
import pytest

from engine import snapshot
from engine.snapshot import build_snapshots
from tests.engine.test_snapshot import CFG, DATA_END, JOURNEY, hand_db

WAIT_S = 120  # how long one side waits for the other (never reached when they overlap; generous for a loaded host)


def _payloads(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [s.payload_json for s in build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0", data_end=DATA_END)]


def _left(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("""SELECT name FROM (SELECT table_name AS name FROM duckdb_tables() UNION ALL
                          SELECT view_name FROM duckdb_views()) WHERE name LIKE '\\_jg\\_%' ESCAPE '\\'""").fetchall()


def _counting_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("jg-step-counts")]


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

    def held(real: Any, hold: bool, other: threading.Event, done: threading.Event) -> Any:
        """`real`, held until `other` is set when `hold`; `done` is set once it has run."""
        def call(*a: Any, **k: Any) -> Any:
            if hold:
                waited.append(other.wait(WAIT_S))
            try:
                return real(*a, **k)
            finally:
                done.set()
        return call

    monkeypatch.setattr(snapshot.step_counts, "count_steps",
                        held(snapshot.step_counts.count_steps, last == "counts", queried, counted))
    monkeypatch.setattr(snapshot.progress, "incidence_by_scope",
                        held(snapshot.progress.incidence_by_scope, last == "queries", counted, queried))
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
    assert _counting_threads() == []  # the build waited for its thread
    assert _left(con) == []


def test_the_queries_cover_every_query() -> None:
    assert sorted(snapshot._CLASS_QUERIES + snapshot._STEP_QUERIES) == sorted(snapshot._QUERIES)
