"""engine.layer_files: one sorted stream cut into content-named Parquet files."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from engine import layer_files
from engine.layer_files import Part, first_last_match
from ontology.errors import EngineError

ROWS = layer_files.ROW_GROUP * 2 + 1000  # three row groups in the big part


@pytest.fixture()
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"""CREATE TABLE t AS SELECT CASE WHEN i < {ROWS} THEN 'a' ELSE 'b' END AS part, i AS n,
                    'id' || i AS label FROM range({ROWS + 10}) r(i)""")
    return con


def _parts() -> list[Part]:
    return [Part(Path("x") / "part=a", ROWS, first_last_match({"part": "a".__eq__})),
            Part(Path("x") / "part=b", 10, first_last_match({"part": "b".__eq__}))]


def _write(con: duckdb.DuckDBPyConnection, root: Path, batch: int) -> list[tuple[str, str]]:
    with con.sql("SELECT * FROM t ORDER BY part, n").to_arrow_reader(batch) as reader:
        return layer_files.write_parts(reader, _parts(), root, root / ".tmp")


def test_files_hold_each_part_in_order_in_fixed_row_groups(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    written = _write(con, tmp_path, 50_000)
    big = pq.ParquetFile(tmp_path / written[0][0])
    assert [big.metadata.row_group(i).num_rows for i in range(big.num_row_groups)] == [
        layer_files.ROW_GROUP, layer_files.ROW_GROUP, 1000]
    assert big.read().column("n").to_pylist() == list(range(ROWS))
    assert pq.read_table(tmp_path / written[1][0]).column("n").to_pylist() == list(range(ROWS, ROWS + 10))
    assert written[1][0].startswith("x/part=b/") and written[1][0].endswith(f"{written[1][1]}.parquet")


def test_bytes_do_not_depend_on_how_the_stream_is_batched(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    assert _write(con, tmp_path / "one", 7_777) == _write(con, tmp_path / "two", 200_000)


def test_a_stream_that_does_not_match_its_parts_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    wrong = [Part(Path("x") / "part=b", ROWS, first_last_match({"part": "b".__eq__}))]
    with pytest.raises(EngineError), con.sql("SELECT * FROM t ORDER BY part, n").to_arrow_reader(50_000) as reader:
        layer_files.write_parts(reader, wrong, tmp_path, tmp_path / ".tmp")
    with pytest.raises(EngineError), con.sql("SELECT * FROM t ORDER BY part, n").to_arrow_reader(50_000) as reader:
        layer_files.write_parts(reader, _parts()[:1], tmp_path, tmp_path / ".tmp")  # rows left over
