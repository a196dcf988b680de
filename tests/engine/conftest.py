"""Shared helpers for the engine data-layer tests: a DuckDB file on disk and the whole data pipeline."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine import ingest, journeys, normalize, states
from engine.config import Config, from_dict

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


@dataclass
class Run:
    loaded: ingest.IngestStats
    summary: normalize.NormalizeSummary
    journeys: journeys.JourneyStats


@pytest.fixture
def con(tmp_path: Path) -> Iterable[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(tmp_path / "journeygraph.duckdb"))
    yield connection
    connection.close()


def make_config(**overrides: Any) -> Config:
    """A small valid config; keyword arguments replace top-level keys."""
    raw: dict[str, Any] = {
        "journeys": {"activation": {"start": "sign_up", "window": "14d",
                                    "outcomes": {"converted": "event_name = 'subscription_started'",
                                                 "dropped": {"inactive_for": "7d"}}}},
    }
    raw.update(overrides)
    return from_dict(raw)


def write_jsonl(path: Path, rows: Iterable[dict[str, Any] | str]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def run_pipeline(con: duckdb.DuckDBPyConnection, source: str | Path, cfg: Config, run_id: str = "run-1",
                 watermark: Any = None) -> Run:
    loaded = ingest.load(con, str(source), cfg, run_id)
    summary = normalize.normalize(con, cfg, watermark=watermark)
    states.derive(con, cfg)
    built = journeys.build(con, cfg)
    return Run(loaded, summary, built)


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return con.execute(sql, params or []).fetchall()


def demo_tables_by_chunk_size(tmp_path: Path, monkeypatch: Any, module: Any, queries: list[str]) -> list[list[Any]]:
    """The demo run's `queries` with the module's default chunk size and with tiny chunks (1,000 events, batches of 700)."""
    from engine.config import load_config

    cfg = load_config(FIXTURES / "demo.yaml")
    results = []
    for chunk_events in (module.CHUNK_EVENTS, 1_000):
        monkeypatch.setattr(module, "CHUNK_EVENTS", chunk_events)
        monkeypatch.setattr(module, "_BATCH_ROWS", min(chunk_events, 700))
        connection = duckdb.connect(str(tmp_path / f"chunks_{chunk_events}.duckdb"))
        run_pipeline(connection, FIXTURES / "demo_events.jsonl", cfg)
        results.append([rows(connection, q) for q in queries])
        connection.close()
    return results
