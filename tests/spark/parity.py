"""Run one config through both engines and compare what later stages and users see, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from engine.app import cli

# the stored tables a run leaves (parquet_files names the silver and gold files by the SHA-256 of their bytes)
TABLES = ("rejected_events", "quarantine", "journeys", "journey_progress", "journey_cuts", "identity_links",
          "identity_map", "bot_actors", "parquet_files", "parquet_inputs", "parquet_state")
LAYERS = {"events": "events", "journey_steps": "journey_steps%"}  # manifest layers behind each view
# what this run read and reused, and how it read the files it read ("inferred"): an incremental DuckDB rerun
# (which may read no file) and a Spark rerun (always a full recompute) differ there only
READS = ("incremental", "events_read_this_run", "inferred")


def run_both(config: Path, tmp: Path, capsys, runs: int = 1) -> dict[str, dict[str, str]]:
    """Run `config` `runs` times into one workspace per engine; `snapshot` and `feed` JSON per engine.

    "run" is the summaries without READS, which "reads" holds (one JSON object per run)."""
    out: dict[str, dict[str, str]] = {}
    for engine in ("duckdb", "spark"):
        ws = str(tmp / engine)
        summaries, reads = [], []
        for _ in range(runs):
            assert cli.main(["run", "-c", str(config), "-w", ws, "--engine", engine, "--format", "json"]) == 0
            summary = json.loads(capsys.readouterr().out)
            summary.pop("seconds")
            reads.append(json.dumps({key: summary.pop(key) for key in READS}, sort_keys=True))
            summaries.append(json.dumps(summary, sort_keys=True))
        out[engine] = {"run": "\n".join(summaries), "reads": "\n".join(reads)}
        for command in ("snapshot", "feed"):
            assert cli.main([command, "-w", ws, "--format", "json"]) == 0
            out[engine][command] = capsys.readouterr().out
    return out


def table_differences(tmp: Path) -> dict[str, tuple[int, int, int]]:
    """Per stored table and per layer view: (rows, rows only in the DuckDB run, rows only in the Spark run)."""
    con = duckdb.connect()
    for engine in ("duckdb", "spark"):
        con.execute(f"ATTACH '{tmp / engine / 'journeygraph.duckdb'}' AS {engine} (READ_ONLY)")
        for view, layer in LAYERS.items():  # the layer as the workspace's view reads it: the files the manifest names
            paths = [str(tmp / engine / p) for (p,) in con.execute(
                f"SELECT path FROM {engine}.parquet_files WHERE layer LIKE ? ORDER BY path", [layer]).fetchall()]
            con.execute(f"CREATE VIEW {engine}_{view} AS SELECT * FROM read_parquet({paths!r})")
    sources = {t: (f"duckdb.{t}", f"spark.{t}") for t in TABLES} | {v: (f"duckdb_{v}", f"spark_{v}") for v in LAYERS}
    diffs = {}
    for table, (duck, spark) in sources.items():
        rows = con.execute(f"SELECT count(*) FROM {duck}").fetchall()[0][0]
        only = [con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})").fetchall()[0][0]
                for a, b in ((duck, spark), (spark, duck))]
        diffs[table] = (rows, only[0], only[1])
    con.close()
    return diffs
