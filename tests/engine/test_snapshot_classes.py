"""Journeys find their class by the class key's hash (engine.snapshot `ckey`), and by the keys themselves when
two classes share a hash: the snapshots are the same either way."""

from __future__ import annotations

import duckdb
import pytest

from engine import snapshot
from engine.snapshot import build_snapshots
from tests.engine.test_snapshot import CFG, DATA_END, JOURNEY, hand_db

# a hash every class of a tenant shares: forces the join on the keys themselves
SHARED_HASH = "CASE WHEN bucket IS NOT NULL THEN hash(tenant_id) END"


def _payloads(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [s.payload_json for s in build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0", data_end=DATA_END)]


def test_classes_that_share_a_hash_are_joined_by_their_keys(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    con = hand_db(tmp_path / "h.duckdb")
    by_hash = _payloads(con)
    monkeypatch.setattr(snapshot, "_CLASS_HASH", SHARED_HASH)
    assert _payloads(con) == by_hash
    assert len(by_hash) > 3  # several classes (periods, plans, release sides), so the shared hash collides


@pytest.mark.parametrize(("ckeys", "join"), [
    ([11, 12, 13], "ckey"),
    ([11, 12, 11], snapshot._CLASS_KEYS),  # two classes, one hash
    ([11, 12, None], snapshot._CLASS_KEYS),  # a class with a NULL key joins nothing, by the keys as before
], ids=["distinct", "shared", "null"])
def test_class_join(ckeys: list[int | None], join: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE _jg_classes AS SELECT unnest(?::UBIGINT[]) AS ckey", [ckeys])
    assert snapshot._class_join(con) == join


def test_the_class_view_goes_with_the_tables(tmp_path) -> None:
    con = hand_db(tmp_path / "v.duckdb")
    _payloads(con)
    left = con.execute("""SELECT name FROM (SELECT table_name AS name FROM duckdb_tables() UNION ALL
                          SELECT view_name FROM duckdb_views()) WHERE name LIKE '\\_jg\\_%' ESCAPE '\\'""").fetchall()
    assert left == []


@pytest.mark.parametrize("null", ["bucket", "rel_before", "rel_after"])
def test_a_null_key_hashes_to_null(null: str) -> None:
    """A journey without a start time joins no class by the keys (NULL = NULL is not true); by its hash neither."""
    keys = {"tenant_id": "''", "bucket": "TIMESTAMP '2026-01-05'", "segvals": "['pro']", "rel_before": "[1]",
            "rel_after": "[]::INTEGER[]"}
    row = ", ".join(f"NULL AS {k}" if k == null else f"{v} AS {k}" for k, v in keys.items())
    assert duckdb.sql(f"SELECT {snapshot._CLASS_HASH} FROM (SELECT {row})").fetchall() == [(None,)]
    assert duckdb.sql(f"SELECT {snapshot._CLASS_HASH} IS NULL FROM (SELECT {', '.join(f'{v} AS {k}' for k, v in keys.items())})").fetchall() == [(False,)]


@pytest.mark.parametrize("shared", [False, True], ids=["by-hash", "by-keys"])
def test_per_journey_rows_are_the_class_views(tmp_path, monkeypatch: pytest.MonkeyPatch, shared: bool) -> None:
    """engine.step_counts reads each journey of _jg_jclass once, with its _jg_jkeys columns (joined by the class
    join itself, not by _jg_jclass joined back to _jg_jkeys)."""
    con = hand_db(tmp_path / "p.duckdb")
    if shared:
        monkeypatch.setattr(snapshot, "_CLASS_HASH", SHARED_HASH)
    seen = []
    real = snapshot.step_counts.journeys

    def journeys(c, table, size):
        cols = "jix, cls, censored, outcome, journey_id, known_outcome, tracked, end_ts, data_end"
        got = c.execute(f"SELECT {cols} FROM {table} ORDER BY jix").fetchall()
        want = c.execute(f"""SELECT {cols} FROM (SELECT c.jix, c.cls, c.censored, c.outcome, c.journey_id,
                             k.known_outcome, k.tracked, k.end_ts, k.data_end FROM _jg_jclass c JOIN _jg_jkeys k
                             USING (jix)) ORDER BY jix""").fetchall()
        seen.append((got, want))
        return real(c, table, size)

    monkeypatch.setattr(snapshot.step_counts, "journeys", journeys)
    _payloads(con)
    assert len(seen) == 1 and seen[0][0] == seen[0][1] and len(seen[0][0]) > 3
