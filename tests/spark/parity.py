"""Run one config through both engines and compare what later stages and users see, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from engine.app import cli

TABLES = ("events", "rejected_events", "quarantine", "journeys", "journey_steps", "journey_progress")


def run_both(config: Path, tmp: Path, capsys, runs: int = 1) -> dict[str, dict[str, str]]:
    """Run `config` `runs` times into one workspace per engine; `snapshot` and `feed` JSON per engine."""
    out: dict[str, dict[str, str]] = {}
    for engine in ("duckdb", "spark"):
        ws = str(tmp / engine)
        summaries = []
        for _ in range(runs):
            assert cli.main(["run", "-c", str(config), "-w", ws, "--engine", engine, "--format", "json"]) == 0
            summary = json.loads(capsys.readouterr().out)
            summary.pop("seconds")
            summaries.append(json.dumps(summary, sort_keys=True))
        out[engine] = {"run": "\n".join(summaries)}
        for command in ("snapshot", "feed"):
            assert cli.main([command, "-w", ws, "--format", "json"]) == 0
            out[engine][command] = capsys.readouterr().out
    return out


def table_differences(tmp: Path) -> dict[str, tuple[int, int, int]]:
    """Per table: (rows, rows only in the DuckDB run, rows only in the Spark run)."""
    con = duckdb.connect()
    for engine in ("duckdb", "spark"):
        con.execute(f"ATTACH '{tmp / engine / 'journeygraph.duckdb'}' AS {engine} (READ_ONLY)")
    diffs = {}
    for table in TABLES:
        rows = con.execute(f"SELECT count(*) FROM duckdb.{table}").fetchall()[0][0]
        only = [con.execute(f"SELECT count(*) FROM (SELECT * FROM {a}.{table} EXCEPT ALL SELECT * FROM {b}.{table})").fetchall()[0][0]
                for a, b in (("duckdb", "spark"), ("spark", "duckdb"))]
        diffs[table] = (rows, only[0], only[1])
    con.close()
    return diffs
