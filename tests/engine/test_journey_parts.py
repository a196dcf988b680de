"""The DuckDB journey cut fetches window rows unsorted, in parts of actors, and orders them in numpy:
the tables must not depend on how many parts and chunks, nor on the order the rows arrive in."""

from __future__ import annotations

from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from engine import journeys
from engine.config import load_config
from tests.engine.conftest import FIXTURES, rows, run_pipeline

QUERIES = ["SELECT * FROM journeys ORDER BY journey, tenant_id, actor_id",
           "SELECT * FROM journey_steps ORDER BY journey, journey_id, step",
           "SELECT * FROM journey_progress ORDER BY journey, journey_id"]


def _demo_tables(path: str) -> list[list[Any]]:
    con = duckdb.connect(path)
    run_pipeline(con, FIXTURES / "demo_events.jsonl", load_config(FIXTURES / "demo.yaml"))
    got = [rows(con, q) for q in QUERIES]
    con.close()
    return got


def test_parts_chunks_and_arrival_order_give_the_same_tables(tmp_path, monkeypatch) -> None:
    default = _demo_tables(str(tmp_path / "default.duckdb"))
    real_fetch = journeys.fetch
    parts = []

    def reversed_fetch(*args: Any, **kwargs: Any) -> pa.Table:
        table = real_fetch(*args, **kwargs)
        parts.append(table.num_rows)
        return table.take(pa.array(np.arange(table.num_rows)[::-1]))  # rows arriving in the worst order

    monkeypatch.setattr(journeys, "fetch", reversed_fetch)
    monkeypatch.setattr(journeys, "PART_EVENTS", 5_000)
    monkeypatch.setattr(journeys, "CHUNK_EVENTS", 700)
    small = _demo_tables(str(tmp_path / "small.duckdb"))
    assert len(parts) > 3 and all(n > 0 for n in parts)
    assert len(default[0]) == 2400 and len(default[1]) > 10_000 and default[2]
    assert default == small
