"""Journeys numbered by (class, journey_id) through engine.step_arrays' id ranks: the ranks follow DuckDB's VARCHAR
order, and engine.snapshot_estimates.prepare numbers `_jg_est` by them exactly as by the strings."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import snapshot_estimates, step_arrays

IDS = ["b", "a", "B", "é", "z", "a~", "ab", "a b", "\x7f", "ü", "Z9", "aa", "abc", "ab\x01", "0", "a" * 30]


def _duckdb_order(ids: list[str]) -> list[str]:
    return [r[0] for r in duckdb.sql("SELECT unnest(?::VARCHAR[]) AS s ORDER BY s", params=[ids]).fetchall()]


@pytest.mark.parametrize("cut", [0, 3], ids=["whole", "sliced"])
def test_ranks_follow_duckdb_varchar_order(cut: int) -> None:
    ids = pa.array(["pad"] * cut + IDS).slice(cut)  # an Arrow slice starts at an offset into its buffers
    jix = np.arange(len(IDS))[::-1].copy()  # jix are not the order of the runs
    rank = step_arrays._id_rank(ids, jix, len(IDS) + 2)
    assert rank is not None and rank[len(IDS):].tolist() == [-1, -1]
    by_rank = sorted(range(len(IDS)), key=lambda i: rank[jix[i]])
    assert [IDS[i] for i in by_rank] == _duckdb_order(IDS)


def test_an_id_with_a_nul_byte_gives_no_ranks() -> None:
    assert step_arrays._id_rank(pa.array(["a", "a\x00"]), np.array([0, 1]), 2) is None


def _con(ids: list[str], cls: list[int]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _jg_jclass AS SELECT unnest(?::BIGINT[]) AS jix, unnest(?::VARCHAR[]) AS journey_id, "
                "unnest(?::BIGINT[]) AS cls", [list(range(len(ids))), ids, cls])
    con.execute("""CREATE TEMP TABLE _jg_jkeys AS SELECT jix, journey_id, TIMESTAMP '2026-01-01' AS start_ts, false AS censored,
                   1.0 AS aj_t, 'x' AS aj_o, TIMESTAMP '2026-02-01' AS data_end, 'x' AS outcome, false AS tracked,
                   TIMESTAMP '2026-01-02' AS end_ts FROM _jg_jclass""")
    con.execute("CREATE TEMP TABLE _jg_jour AS SELECT jix, 5.0 AS duration_s, NULL::BIGINT AS path_id FROM _jg_jclass")
    return con


def _numbered(con: duckdb.DuckDBPyConnection, rank: np.ndarray | None) -> list[str]:
    steps = step_arrays.StepArrays(jix=np.zeros(0, np.int64), state=np.zeros(0, np.int64), names=pa.array([], pa.string()),
                                   ts=np.zeros(0, np.int64), size=len(IDS), journey_ids=pa.array(IDS), id_rank=rank)
    with step_arrays.shared(con, "main", steps):
        snapshot_estimates.prepare(con, "main", "dropped")
    rows = con.execute("SELECT jrow, journey_id FROM _jg_est ORDER BY jrow").fetchall()
    assert [r[0] for r in rows] == list(range(len(IDS)))
    return [r[1] for r in rows]


def test_prepare_numbers_journeys_by_class_then_id_through_the_ranks() -> None:
    cls = [i % 3 for i in range(len(IDS))]
    want = [jid for _, jid in sorted(zip(cls, IDS), key=lambda p: (p[0], _duckdb_order(IDS).index(p[1])))]
    rank = step_arrays._id_rank(pa.array(IDS), np.arange(len(IDS)), len(IDS))
    assert _numbered(_con(IDS, cls), rank) == want
    assert _numbered(_con(IDS, cls), None) == want  # no ranks: the strings are sorted
    assert rank is not None
    backwards = len(IDS) - 1 - rank  # ranks are what orders the rows when every journey has one …
    assert _numbered(_con(IDS, cls), backwards) == [jid for _, jid in sorted(zip(cls, IDS), key=lambda p: (
        p[0], -_duckdb_order(IDS).index(p[1])))]
    backwards[4] = -1  # … and the strings when one lacks it
    assert _numbered(_con(IDS, cls), backwards) == want


def _est(con: duckdb.DuckDBPyConnection, rank: np.ndarray | None, cls: np.ndarray | None) -> list[tuple]:
    steps = step_arrays.StepArrays(jix=np.zeros(0, np.int64), state=np.zeros(0, np.int64), names=pa.array([], pa.string()),
                                   ts=np.zeros(0, np.int64), size=len(IDS), journey_ids=pa.array(IDS), id_rank=rank)
    with step_arrays.shared(con, "main", steps):
        snapshot_estimates.prepare(con, "main", "dropped", cls)
    return con.execute("SELECT * FROM _jg_est ORDER BY jrow").fetchall()


def test_numbering_from_the_classes_array_is_the_sql_numbering() -> None:
    cls = [(i * 7) % 4 for i in range(len(IDS))]
    rank = step_arrays._id_rank(pa.array(IDS), np.arange(len(IDS)), len(IDS))
    assert rank is not None
    backwards = len(IDS) - 1 - rank
    holed = backwards.copy()
    holed[4] = -1  # a journey without a rank: the strings number them (the classes array is not used)
    for r in (rank, backwards, holed):
        want = _est(_con(IDS, cls), r, None)
        assert [row[0] for row in want] == list(range(len(IDS)))
        assert _est(_con(IDS, cls), r, np.array(cls, dtype=np.int64)) == want
    assert snapshot_estimates._numbered(np.array(cls, dtype=np.int64), holed) is None
    big = np.where(np.array(cls) == 0, 1 << 16, np.array(cls)).astype(np.int64)  # past uint16 (as one: 0, first)
    assert _est(_con(IDS, big.tolist()), backwards, big) == _est(_con(IDS, big.tolist()), backwards, None)
