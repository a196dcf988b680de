"""engine.parquet_files: layer files whose bytes depend on the rows alone, read back by DuckDB with the layer types."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import parquet_files, silver
from engine.silver import file_sha256

ROWS = 300_000  # more than two row groups
STEPS_SQL = f"""SELECT 'main' AS journey, 'j' || lpad(CAST(i // 7 AS VARCHAR), 6, '0') AS journey_id,
                CAST(i % 7 AS INTEGER) AS step, CASE WHEN i % 11 = 0 THEN NULL ELSE 's' || (i % 5) END AS state,
                TIMESTAMP '2026-01-05' + to_microseconds(i * 1001) AS ts, 'e' || i AS event_id
                FROM range({ROWS}) t(i) ORDER BY i"""
EVENTS_SQL = f"""SELECT '' AS tenant_id, 'u' || (i % 13) AS actor_id, 'e' || i AS event_id,
        'n' || (i % 3) AS event_name, TIMESTAMP '2026-01-05 00:00:00.123456' + to_seconds(i) AS ts,
        CASE WHEN i % 5 = 0 THEN NULL ELSE TIMESTAMP '2026-01-05' + to_seconds(i + 7) END AS received_at,
        's' || i AS session_id, 'web' AS platform, NULL AS user_agent,
        CAST('{{"plan": "free",  "n": ' || i || '}}' AS JSON) AS properties, CAST(i AS BIGINT) AS input_order,
        CAST(i // 13 AS BIGINT) AS seq, 'n' AS state_raw, NULL AS state_semantic, NULL AS state_lifecycle
        FROM range({ROWS}) t(i)"""


def _write(tmp: Path, batches: list[pa.RecordBatch], workers: int) -> str:
    """The sha of the one file the writer makes of `batches` (fed as a query over them)."""
    con = duckdb.connect()
    con.register("fed", pa.Table.from_batches(batches))  # keeps the batches as they are
    writer = parquet_files.LayerWriter(silver.STEP_COLUMNS, tmp, lambda scratch, _: file_sha256(scratch), workers)
    writer.add(con, "SELECT * FROM fed", None)
    return str(writer.results()[0])


@pytest.mark.parametrize("layer", ["journey_steps", "events"])
def test_bytes_do_not_depend_on_how_the_rows_are_batched(tmp_path: Path, layer: str) -> None:
    sql = STEPS_SQL if layer == "journey_steps" else f"{EVENTS_SQL} ORDER BY i"
    table = duckdb.connect().sql(sql).to_arrow_table().combine_chunks()
    cut = [b for start, size in ((0, 1000), (1000, 130_000), (131_000, 7), (131_007, ROWS - 131_007))
           for b in table.slice(start, size).to_batches()]
    schema = parquet_files.arrow_schema(silver.LAYERS[layer])
    for name, batches in (("whole", table.to_batches()), ("cut", cut)):
        parquet_files.encode(tmp_path / name, schema, parquet_files.row_groups(iter(batches), schema),
                             silver.DELTA_COLUMNS[layer])
    assert len(cut) == 4 and file_sha256(tmp_path / "whole") == file_sha256(tmp_path / "cut")


@pytest.mark.parametrize("workers", [1, 2])
def test_bytes_do_not_depend_on_the_workers(tmp_path: Path, workers: int) -> None:
    table = duckdb.connect().sql(STEPS_SQL).to_arrow_table()
    assert _write(tmp_path / "a", table.to_batches(), 0) == _write(tmp_path / "b", table.to_batches(), workers)


def test_row_groups_are_whole_and_contiguous() -> None:
    table = duckdb.connect().sql(STEPS_SQL).to_arrow_table()
    groups = list(parquet_files.row_groups(iter(table.slice(0, 250).to_batches(max_chunksize=33)),
                                           parquet_files.arrow_schema(silver.STEP_COLUMNS), size=100))
    assert [g.num_rows for g in groups] == [100, 100, 50]
    assert all(c.num_chunks == 1 for g in groups for c in g.columns)
    assert pa.concat_tables(groups).cast(table.schema).equals(table.slice(0, 250))


def _encodings(path: Path) -> dict[str, set[str]]:
    """Per column, the encodings of its chunks in every row group."""
    meta = pq.ParquetFile(path).metadata
    return {meta.schema.column(c).name: {e for g in range(meta.num_row_groups) for e in meta.row_group(g).column(c).encodings}
            for c in range(meta.num_columns)}


def test_event_counters_and_times_are_delta_encoded_and_read_back(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE e AS {EVENTS_SQL}")
    writer = parquet_files.LayerWriter(silver.EVENT_COLUMNS, tmp_path, lambda scratch, _: scratch, 1,
                                       delta=silver.DELTA_COLUMNS["events"])
    writer.add(con, "SELECT * FROM e ORDER BY actor_id, seq", None)
    path = writer.results()[0]
    kinds = _encodings(path)
    assert {c for c, e in kinds.items() if "DELTA_BINARY_PACKED" in e} == {"ts", "received_at", "input_order", "seq"}
    assert "RLE_DICTIONARY" in kinds["actor_id"] and "PLAIN" in kinds["event_id"]
    back = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    assert back == con.execute("SELECT * FROM e ORDER BY actor_id, seq").fetchall()


def test_steps_are_not_delta_encoded(tmp_path: Path) -> None:
    con = duckdb.connect()
    writer = parquet_files.LayerWriter(silver.STEP_COLUMNS, tmp_path, lambda scratch, _: scratch, 0,
                                       delta=silver.DELTA_COLUMNS["journey_steps"])
    writer.add(con, STEPS_SQL, None)
    assert not any("DELTA_BINARY_PACKED" in e for e in _encodings(writer.results()[0]).values())


def test_layer_types_and_rows_read_back(tmp_path: Path) -> None:
    con = duckdb.connect()
    con.execute("""CREATE TABLE e AS SELECT '' AS tenant_id, 'u' || (i % 13) AS actor_id, 'e' || i AS event_id,
        'n' || (i % 3) AS event_name, TIMESTAMP '2026-01-05 00:00:00.123456' + to_seconds(i) AS ts,
        CAST(NULL AS TIMESTAMP) AS received_at, 's' || i AS session_id, 'web' AS platform, NULL AS user_agent,
        CAST('{"plan": "free",  "n": ' || i || '}' AS JSON) AS properties, CAST(i AS BIGINT) AS input_order,
        CAST(i // 13 AS BIGINT) AS seq, 'n' AS state_raw, NULL AS state_semantic, NULL AS state_lifecycle
        FROM range(2000) t(i)""")
    writer = parquet_files.LayerWriter(silver.EVENT_COLUMNS, tmp_path, lambda scratch, _: scratch, 1)
    writer.add(con, "SELECT * FROM e ORDER BY actor_id, seq", None)
    path = writer.results()[0]
    kinds = con.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('{path}'))").fetchall()
    assert kinds == [(name, kind) for name, kind in silver.EVENT_COLUMNS]
    back = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    assert back == con.execute("SELECT * FROM e ORDER BY actor_id, seq").fetchall()
    assert back[0][9] == '{"plan": "free",  "n": 0}'  # the JSON text as written, not reformatted


@pytest.mark.parametrize("workers", [0, 1])
def test_a_failing_query_names_no_file_and_raises(tmp_path: Path, workers: int) -> None:
    con = duckdb.connect(config={"threads": 1})
    named: list[Path] = []
    writer = parquet_files.LayerWriter(silver.STEP_COLUMNS, tmp_path, lambda scratch, _: named.append(scratch), workers)
    streamed = STEPS_SQL.replace("ORDER BY i", "")  # streamed: the error comes after the first row group was handed on
    with pytest.raises((duckdb.Error, OSError), match="boom"):  # a streamed error comes through pyarrow
        writer.add(con, f"SELECT * REPLACE (CASE WHEN event_id = 'e200000' THEN error('boom') END AS state) FROM ({streamed})",
                   None)
    writer.close()
    assert named == []


def test_silver_and_gold_files_do_not_depend_on_the_thread_count(tmp_path: Path) -> None:
    names = []
    for threads in (1, 2):
        root = tmp_path / str(threads)
        root.mkdir()
        con = duckdb.connect(str(root / "ws.duckdb"))
        con.execute(f"SET threads = {threads}")
        silver.attach(con, root, writable=True)
        silver.make_temp_table(con, "events")
        con.execute(f"""INSERT INTO events SELECT '', 'u' || (i % 101), 'e' || i, 'n' || (i % 3),
            TIMESTAMP '2026-01-05' + to_seconds(i * 3), NULL, 's' || (i % 707), 'web', NULL, '{{}}', i, i // 101,
            'n', NULL, NULL FROM range({ROWS}) t(i)""")
        silver.persist_events(con)
        silver.make_temp_table(con, "journey_steps")
        con.execute(f"INSERT INTO journey_steps {STEPS_SQL}")
        silver.persist_steps(con, sealed_ids="SELECT 'j' || lpad(CAST(i AS VARCHAR), 6, '0') FROM range(9000) t(i)")
        names.append(con.execute("SELECT layer, path FROM parquet_files ORDER BY ALL").fetchall())
    assert len(names[0]) == 13 and names[0] == names[1]  # 11 days, an open and a sealed steps file
    delta = {layer: {c for c, e in _encodings(tmp_path / "1" / path).items() if "DELTA_BINARY_PACKED" in e}
             for layer, path in names[0]}
    assert delta == {"events": {"ts", "received_at", "input_order", "seq"}, "journey_steps": set(),
                     "journey_steps_sealed": set()}
