"""engine.silver.persist_steps: gold files sorted by (journey_id, step) through the journeys' id ranks, split by seal."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from engine import silver

# (journey, journey_id, step): inserted neither in id nor in step order; ids of two definitions interleave
STEPS = [("main", "c3", 1), ("main", "a1", 0), ("other", "b2", 0), ("main", "c3", 0), ("main", "a1", 2),
         ("other", "a9", 1), ("main", "b0", 0), ("main", "a1", 1), ("other", "a9", 0), ("main", "b0", 1)]
SEALED = ("a1", "b2", "b0")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "ws.duckdb"))
    silver.attach(connection, tmp_path, writable=True)
    silver.make_temp_table(connection, "journey_steps")
    for journey, jid, step in STEPS:
        connection.execute("INSERT INTO journey_steps VALUES (?, ?, ?, ?, TIMESTAMP '2026-01-05' + to_seconds(?), ?)",
                           [journey, jid, step, f"s{step}", step, f"{jid}-{step}"])
    connection.execute("CREATE TABLE cuts AS SELECT DISTINCT journey_id FROM journey_steps")
    connection.execute("INSERT INTO cuts SELECT * FROM cuts")  # a journey named twice gives its steps once
    return connection


def _files(con: duckdb.DuckDBPyConnection, root: Path) -> dict[tuple[str, str], list[tuple[str, int]]]:
    out = {}
    for layer, name, path, n in con.execute("SELECT layer, part, path, rows FROM parquet_files ORDER BY ALL").fetchall():
        rows = con.execute(f"SELECT journey_id, step FROM read_parquet('{root / path}')").fetchall()
        assert len(rows) == n and path.startswith(f"gold/journey_steps/journey={name}/")
        out[(layer, name)] = rows
    return out


def test_files_are_in_journey_id_and_step_order_and_split_by_seal(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ids = ", ".join(f"'{i}'" for i in SEALED)
    silver.persist_steps(con, sealed_ids=f"SELECT journey_id FROM cuts WHERE journey_id IN ({ids})",
                         journey_ids="SELECT journey_id FROM cuts")
    assert _files(con, tmp_path) == {
        ("journey_steps", "main"): [("c3", 0), ("c3", 1)],
        ("journey_steps", "other"): [("a9", 0), ("a9", 1)],
        (silver.SEALED_STEPS, "main"): [("a1", 0), ("a1", 1), ("a1", 2), ("b0", 0), ("b0", 1)],
        (silver.SEALED_STEPS, "other"): [("b2", 0)]}
    assert con.execute("SELECT count(*) FROM journey_steps").fetchall() == [(len(STEPS),)]
    assert not silver.is_temp_table(con, silver.STEP_ORDER)


def test_without_ids_or_seal_one_open_file_per_journey(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    silver.persist_steps(con)
    files = _files(con, tmp_path)
    assert set(files) == {("journey_steps", "main"), ("journey_steps", "other")}
    assert files[("journey_steps", "main")] == sorted((j, s) for name, j, s in STEPS if name == "main")


def test_ranks_only_the_journeys_with_steps(con: duckdb.DuckDBPyConnection) -> None:
    """journey_ids may name many more journeys (an incremental run: every open one): those without steps get no
    rank, and the ranks keep id order."""
    con.execute("INSERT INTO cuts VALUES ('a0'), ('b1'), ('zz')")  # journeys without steps, between and after
    files = silver._step_files(con, "SELECT journey_id FROM cuts WHERE journey_id IN ('a1', 'zz')",
                               "SELECT journey_id FROM cuts")
    assert con.execute(f"SELECT journey_id, r, sealed FROM {silver.STEP_ORDER} ORDER BY r").fetchall() == [
        ("a1", 1, True), ("a9", 2, False), ("b0", 3, False), ("b2", 4, False), ("c3", 5, False)]
    assert [(name, sealed, n) for name, sealed, n, _ in files] == [
        ("main", False, 4), ("main", True, 3), ("other", False, 3)]


def test_steps_of_a_journey_the_ids_lack_are_refused(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(RuntimeError, match="lack"):
        silver.persist_steps(con, journey_ids="SELECT journey_id FROM cuts WHERE journey_id <> 'b0'")


@pytest.mark.parametrize("threads", [1, 2])
def test_file_bytes_do_not_depend_on_row_order_or_threads(tmp_path: Path, threads: int) -> None:
    names = []
    for order in ("ASC", "DESC"):  # the working table in id order, and in reverse event order
        root = tmp_path / order
        root.mkdir()
        con = duckdb.connect(str(root / "ws.duckdb"))
        silver.attach(con, root, writable=True)
        con.execute(f"SET threads = {threads}")
        silver.make_temp_table(con, "journey_steps")
        con.execute(f"""INSERT INTO journey_steps SELECT 'main', 'j' || (i % 997), i // 997, 's' || (i % 7),
                        TIMESTAMP '2026-01-05' + to_seconds(i), 'e' || i FROM range(30000) t(i) ORDER BY i % 997 {order}, i {order}""")
        silver.persist_steps(con, sealed_ids="SELECT 'j' || i FROM range(500) t(i)")
        names.append(con.execute("SELECT layer, path FROM parquet_files ORDER BY ALL").fetchall())
    assert len(names[0]) == 2 and names[0] == names[1]
