"""Spark and DuckDB runs on one workspace: a DuckDB run continues incrementally from what a Spark run left,
and a Spark rerun recomputes everything; the end state is what DuckDB alone gives, byte for byte."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.app import pipeline
from tests.e2e.test_incremental import ROOT, _config, _demo_parts, _outputs

pytestmark = pytest.mark.spark


def _grow(tmp: Path, ws: Path, cfg: Path, parts: list[list[str]], engines: tuple[str, ...]) -> list[dict[str, Any]]:
    """One run per part, each with one more file in the source folder, on the given engines; the summaries."""
    data = tmp / "data"
    data.mkdir(exist_ok=True)
    for old in data.glob("*.jsonl"):
        old.unlink()
    summaries = []
    for i, (part, engine) in enumerate(zip(parts, engines, strict=True)):
        (data / f"part{i}.jsonl").write_text("\n".join(part) + "\n")
        summaries.append(pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True, engine=engine))
    return summaries


def test_duckdb_continues_incrementally_after_spark(spark, tmp_path, monkeypatch):
    monkeypatch.delenv("JOURNEYGRAPH_FULL_RECOMPUTE", raising=False)
    parts = _demo_parts()
    cfg = _config(tmp_path, ROOT / "fixtures" / "demo.yaml")
    mixed = _grow(tmp_path, tmp_path / "mixed", cfg, parts, ("spark", "duckdb", "spark"))
    alone = _grow(tmp_path, tmp_path / "alone", cfg, parts, ("duckdb",) * 3)
    assert [s["incremental"]["mode"] for s in mixed] == ["full", "incremental", "full"]
    assert mixed[1]["events_read_this_run"] == len(parts[1]) and mixed[1]["incremental"]["journeys_reused"] > 0
    assert mixed[2]["incremental"]["reason"] == "engine: spark runs a full recompute"
    assert [s["incremental"]["mode"] for s in alone] == ["full", "incremental", "incremental"]
    for key in ("events_read", "accepted", "duplicates", "bots_filtered", "late_rejected", "actors", "journeys",
                "censored", "snapshots", "findings", "insights"):
        assert [s[key] for s in mixed] == [s[key] for s in alone], key
    out_mixed, out_alone = _outputs(tmp_path / "mixed"), _outputs(tmp_path / "alone")
    assert out_mixed["events"] and out_mixed["journey_steps"] and out_mixed["feed"]
    for name in out_alone:
        assert out_mixed[name] == out_alone[name], name
