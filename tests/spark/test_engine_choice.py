"""Choosing the engine: config key, CLI flag, and a DuckDB default that never touches Spark (no marker: no Spark needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from engine import rules
from engine.config import from_dict, to_raw
from ontology.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
BASE = {"journeys": {"a": {"start": "s", "outcomes": {"done": "event_name = 'd'"}}}}


def test_engine_key():
    assert from_dict(BASE).engine == "duckdb"
    spark = from_dict({**BASE, "engine": "spark"})
    assert spark.engine == "spark" and from_dict(to_raw(spark)).engine == "spark"
    assert spark.config_hash == from_dict(BASE).config_hash  # same results, same ids
    with pytest.raises(ConfigError, match="engine"):
        from_dict({**BASE, "engine": "flink"})


def test_duckdb_run_never_imports_pyspark(tmp_path):
    code = ("import sys; from engine.app import cli; "
            f"assert cli.main(['run', '-c', {str(ROOT / 'fixtures' / 'dirty' / 'journeygraph.yaml')!r}, '-w', {str(tmp_path / 'ws')!r}, "
            "'--engine', 'duckdb', '--format', 'json']) == 0; "
            "assert not [m for m in sys.modules if m.startswith(('pyspark', 'engine.spark'))], 'spark imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**__import__("os").environ, "JOURNEYGRAPH_NO_PROGRESS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_upper_tables_match_duckdb():
    """Every character Java/Python upper-case into several, and DuckDB's one-character upper case of each."""
    special = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i <= 0xDFFF and len(chr(i).upper()) > 1)
    assert rules.UPPER_SPECIAL == special
    con = duckdb.connect()
    assert con.execute("SELECT upper(?)", [special]).fetchall()[0][0] == rules.UPPER_DUCKDB


def test_spark_sql_differs_where_duckdb_and_spark_differ():
    assert rules.to_duckdb_sql("CAST(properties.n AS INT) = 2") == "TRY_CAST(JSON_EXTRACT_STRING(properties, '$.n') AS INT) = 2"
    spark = rules.to_spark_sql("CAST(properties.n AS INT) = 2")
    assert "GET_JSON_OBJECT(properties, '$.n')" in spark and "DECIMAL(38, 9)" in spark
    assert "Infinity" in rules.to_spark_sql("length(event_name) / 0 > 1")


def test_spark_without_java_is_a_config_error(monkeypatch, tmp_path):
    import engine.spark

    monkeypatch.setattr(engine.spark.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="Java 17 runtime"):
        engine.spark.SparkStages(tmp_path)
