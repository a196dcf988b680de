"""engine.silver.persist_events: one file per (tenant, UTC day) with exactly that partition's rows, and reuse by digest."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from engine import silver
from engine.parquet_files import ROW_GROUP, Parts

# (tenant, actor, day offset, hh:mm:ss.ffffff): two tenants whose days interleave, an actor crossing midnight
ROWS = [("a", "u1", 0, "23:59:59.999999"), ("a", "u1", 1, "00:00:00"), ("b", "u1", 0, "12:00:00"),
        ("b", "u2", 2, "08:00:00"), ("a", "u2", 2, "09:00:00"), ("a", "u2", 0, "01:00:00"), ("b", "u2", 1, "07:00:00")]


def _fill(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str, int, str]], name: str = "e") -> None:
    silver.make_temp_table(con, "events")
    for i, (tenant, actor, day, clock) in enumerate(rows):
        con.execute("""INSERT INTO events VALUES (?, ?, ?, ?, CAST(? AS TIMESTAMP), NULL, NULL, 'web', NULL,
                       '{"k": 1}', ?, NULL, ?, NULL, NULL)""",
                    [tenant, actor, f"{name}{i}", name, f"2026-01-{5 + day:02d} {clock}", i, name])
    # seq in (tenant, actor, ts) order, as engine.sequencing numbers it
    con.execute("""UPDATE events SET seq = s.seq FROM (SELECT event_id, row_number() OVER (
                     PARTITION BY tenant_id, actor_id ORDER BY ts) - 1 AS seq FROM events) s
                   WHERE events.event_id = s.event_id""")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(str(tmp_path / "ws.duckdb"))
    silver.attach(connection, tmp_path, writable=True)
    return connection


def test_each_file_holds_its_tenant_and_day_in_actor_seq_order(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    _fill(con, ROWS)
    expected = con.execute("SELECT tenant_id, strftime(CAST(ts AS DATE), '%Y-%m-%d'), count(*) FROM events "
                           "GROUP BY ALL ORDER BY ALL").fetchall()
    assert silver.persist_events(con) == {"written": 6, "reused": 0}
    manifest = con.execute("SELECT tenant_id, part, rows, digest, path FROM parquet_files WHERE layer = 'events' "
                           "ORDER BY tenant_id, part").fetchall()
    assert [m[:3] for m in manifest] == expected
    for tenant, day, n, digest, path in manifest:
        assert path.startswith(f"silver/tenant={tenant}/day={day}/")
        rows = con.execute(f"SELECT tenant_id, strftime(ts, '%Y-%m-%d'), actor_id, seq FROM read_parquet('{tmp_path / path}')"
                           ).fetchall()
        assert rows == sorted(rows) and len(rows) == n and {(r[0], r[1]) for r in rows} == {(tenant, day)}
        cols = ", ".join(f"CAST({c} AS VARCHAR)" if k == "JSON" else c for c, k in silver.EVENT_COLUMNS)
        assert con.execute(f"SELECT bit_xor(hash({cols})) FROM events WHERE tenant_id = ? "
                           "AND strftime(ts, '%Y-%m-%d') = ?", [tenant, day]).fetchall()[0][0] == digest


def test_only_the_changed_partition_is_written_again(con: duckdb.DuckDBPyConnection) -> None:
    _fill(con, ROWS)
    silver.persist_events(con)
    before = dict(((t, d), p) for t, d, p in con.execute(
        "SELECT tenant_id, part, path FROM parquet_files WHERE layer = 'events'").fetchall())
    _fill(con, ROWS)
    con.execute("UPDATE events SET platform = 'ios' WHERE tenant_id = 'b' AND ts >= DATE '2026-01-06' "
                "AND ts < DATE '2026-01-07'")
    assert silver.persist_events(con) == {"written": 1, "reused": 5}
    after = dict(((t, d), p) for t, d, p in con.execute(
        "SELECT tenant_id, part, path FROM parquet_files WHERE layer = 'events'").fetchall())
    assert {k for k in after if after[k] != before[k]} == {("b", "2026-01-06")}


def test_digests_taken_as_the_rows_are_written_equal_the_grouped_ones(con: duckdb.DuckDBPyConnection,
                                                                        tmp_path: Path) -> None:
    """A fresh workspace's digests and input XORs come from the day queries' batches (a day here spans
    two of them); they must equal `_event_parts`' grouped ones, which a stored partition is compared with."""
    silver.make_temp_table(con, "events")
    con.execute("""INSERT INTO events SELECT t, 'u' || lpad(CAST(99_999 - i % 100_000 AS VARCHAR), 5, '0'), 'e' || i,
                          'ev' || i % 7, TIMESTAMP '2026-01-05' + to_seconds(CAST(i * 0.6 AS BIGINT)), NULL, NULL,
                          'web', NULL, CAST('{"k": ' || i % 3 || '}' AS JSON), i, i // 100_000, 'ev' || i % 7, NULL, NULL
                   FROM range(300_000) r(i), (VALUES ('a'), ('b')) v(t) WHERE t = 'a' OR i % 5 = 0""")
    grouped = silver._event_parts(con, "temp.main.events")
    assert max(n for _, _, n, _, _ in grouped) > ROW_GROUP  # some day comes in more than one batch
    assert silver.persist_events(con) == {"written": len(grouped), "reused": 0}
    manifest = con.execute("SELECT tenant_id, part, rows, digest, input_xor, path FROM parquet_files "
                           "WHERE layer = 'events' ORDER BY tenant_id, part").fetchall()
    assert [m[:5] for m in manifest] == grouped
    for *_, path in manifest:  # the actors were inserted in descending order: the files sort them
        rows = con.execute(f"SELECT actor_id, seq FROM read_parquet('{tmp_path / path}')").fetchall()
        assert rows == sorted(rows)


def _day_files(con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch, sort_rows: int) -> list[tuple]:
    monkeypatch.setattr(silver, "SORT_ROWS", sort_rows)
    silver.make_temp_table(con, "events")
    con.execute("""INSERT INTO events SELECT t, 'u' || (i * 7919) % 1000, 'e' || i, 'ev' || i % 5,
                          TIMESTAMP '2026-01-05' + to_seconds(i * 37), NULL, NULL, 'web', NULL,
                          CAST('{"k": ' || i % 3 || '}' AS JSON), i, i // 1000, 'ev' || i % 5, NULL, NULL
                   FROM range(40_000) r(i), (VALUES ('a'), ('b')) v(t) WHERE t = 'a' OR i % 3 = 0""")
    silver.persist_events(con)
    return con.execute("SELECT tenant_id, part, rows, digest, input_xor, path FROM parquet_files "
                       "WHERE layer = 'events' ORDER BY ALL").fetchall()


def test_days_sorted_together_give_the_files_a_sort_per_day_gives(con: duckdb.DuckDBPyConnection, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Consecutive days are written from one sorted query (SORT_ROWS rows at most) and cut by their counts: the
    same file bytes (names are their hashes), digests and counts as one query per day (SORT_ROWS 1)."""
    together = _day_files(con, monkeypatch, silver.SORT_ROWS)
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    silver.attach(other, tmp_path / "other", writable=True)
    one_by_one = _day_files(other, monkeypatch, 1)
    assert len(together) == 36 and together == one_by_one  # 18 days of tenant a, 18 of b


def test_sort_runs_end_at_a_reused_day_a_new_tenant_and_the_row_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(silver, "SORT_ROWS", 10)
    rows = [("events", tenant, f"2026-01-0{d}", "", n, None, None, "")
            for tenant, d, n in [("a", 1, 4), ("a", 2, 4), ("a", 3, 4), ("a", 4, 12), ("a", 5, 1), ("a", 6, 1),
                                 ("b", 1, 1), ("b", 2, 1)]]
    assert list(silver._sort_runs(rows, [0, 1, 2, 3, 4, 6, 7])) == [[0, 1], [2], [3], [4], [6, 7]]
    assert list(silver._sort_runs(rows, [4, 5, 6, 7])) == [[4, 5], [6, 7]]  # a new tenant
    assert list(silver._sort_runs(rows, [])) == []


def test_parts_hand_out_exact_counts_and_check_the_total() -> None:
    batches = [pa.record_batch({"x": list(range(i, i + 5))}) for i in (0, 5, 10)]
    parts = Parts(iter(batches))
    got = [[v for b in parts.take(n) for v in b.column(0).to_pylist()] for n in (3, 7, 5)]
    assert got == [[0, 1, 2], [3, 4, 5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
    parts.end()
    short = Parts(iter(batches))
    with pytest.raises(ValueError, match="short"):
        list(short.take(16))
    long = Parts(iter(batches))
    list(long.take(14))
    with pytest.raises(ValueError, match="more rows"):
        long.end()
