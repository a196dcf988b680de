"""The per-journey tables store journey_id (random hex) and actor_id plain: DuckDB's dictionary+FSST
analysis of them cost ~0.2-0.3 µs a row for a 2x smaller column (engine.journeys.ID_COLUMN)."""

from __future__ import annotations

from datetime import datetime, timedelta

from tests.engine.conftest import make_config, rows, run_pipeline, write_jsonl


def test_journey_and_actor_ids_are_stored_uncompressed_and_the_rows_are_unchanged(con, tmp_path) -> None:
    t0 = datetime(2026, 1, 1)
    events = [{"user_id": f"u{i}", "event_name": name, "timestamp": (t0 + timedelta(minutes=i + k)).strftime("%Y-%m-%dT%H:%M:%SZ")}
              for i in range(3000) for k, name in enumerate(["sign_up", "feature_used"])]
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", events), make_config())
    con.execute("CHECKPOINT")
    for table, column in (("journeys", "journey_id"), ("journey_progress", "journey_id"), ("journey_cuts", "journey_id"),
                          ("journeys", "actor_id"), ("journey_cuts", "actor_id")):
        methods = {m for (m,) in rows(con, f"SELECT DISTINCT compression FROM pragma_storage_info('{table}') "
                                             f"WHERE column_name = '{column}' AND segment_type = 'VARCHAR'")}
        assert methods == {"Uncompressed"}, (table, column)
    assert rows(con, "SELECT count(*) FROM journey_cuts SEMI JOIN journeys USING (journey_id, actor_id)") == [(3000,)]
    assert rows(con, "SELECT count(*), count(DISTINCT journey_id), min(length(journey_id)) FROM journeys") == [(3000, 3000, 24)]
    assert rows(con, "SELECT count(*) FROM journey_progress SEMI JOIN journeys USING (journey, journey_id)") == [(3000,)]
