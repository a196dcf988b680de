"""The run's derived tables: built as TEMP tables, persisted together, the previous ones intact until then."""

from __future__ import annotations

import duckdb
import pytest

from engine import derived, journeys, normalize, states
from engine.config import load_config
from tests.engine.conftest import FIXTURES, rows, run_pipeline


def _counts(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    return {t: rows(con, f'SELECT count(*) FROM "{database}".main.{t}')[0][0] for t in derived.TABLES}


def test_temp_tables_shadow_the_previous_run_until_persisted(tmp_path) -> None:
    cfg = load_config(FIXTURES / "demo.yaml")
    con = duckdb.connect(str(tmp_path / "journeygraph.duckdb"))
    run_pipeline(con, FIXTURES / "demo_events.jsonl", cfg)            # the previous run, persisted directly
    before = _counts(con, "journeygraph")

    from engine import ingest

    half = tmp_path / "half.jsonl"
    half.write_text("".join((FIXTURES / "demo_events.jsonl").read_text().splitlines(keepends=True)[:5000]))
    ingest.load(con, str(half), cfg, "run-2")
    normalize.normalize(con, cfg, temporary=True)
    states.derive(con, cfg)
    journeys.build(con, cfg, temporary=True)
    new = {t: rows(con, f"SELECT count(*) FROM {t}")[0][0] for t in derived.TABLES}   # unqualified: the TEMP ones
    assert new["events"] < before["events"] and new["journeys"] < before["journeys"]
    assert _counts(con, "journeygraph") == before                    # the database still holds the previous run

    derived.Persist(con).wait()
    assert _counts(con, "journeygraph") == new
    assert not rows(con, "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name IN ('events', 'journeys')")
    con.close()


def test_a_failed_persist_is_raised_in_the_waiting_thread(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "journeygraph.duckdb"))
    con.execute("CREATE TEMP TABLE events AS SELECT 1 AS x")
    con.close()
    with pytest.raises(duckdb.Error):
        derived.Persist(con).wait()
