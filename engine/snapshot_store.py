"""The `snapshots` table: atomic, insert-only, content-addressed.

A run writes all its snapshots in one transaction, so a killed or failed run
leaves none of them visible. A snapshot whose id is already stored is reused
(same id means same input, config and engine version, hence the same content);
an id stored with *different* content is refused and the whole write rolled
back, because a snapshot, once written, never changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from engine.snapshot import Snapshot, iso
from ontology.errors import BadInput, NotFound, StoreError

SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS snapshots(snapshot_id VARCHAR PRIMARY KEY, tenant_id VARCHAR, journey VARCHAR,
  scope VARCHAR, segment_key VARCHAR, segment_value VARCHAR, release VARCHAR,
  window_start TIMESTAMP, window_end TIMESTAMP, payload JSON)
"""

_COLUMNS = ("snapshot_id", "tenant_id", "journey", "scope", "segment_key", "segment_value", "release",
            "window_start", "window_end")


def ensure_table(con: Any) -> None:
    """The snapshots table, created if missing; a reader's read-only database gets an empty TEMP one instead
    (DuckDB refuses even CREATE … IF NOT EXISTS on a read-only database)."""
    if con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'snapshots'").fetchone()[0]:
        return
    row = con.execute("SELECT readonly FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    con.execute(SCHEMA_SQL.replace("CREATE TABLE", "CREATE TEMP TABLE") if row and row[0] else SCHEMA_SQL)


def _ts(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.removesuffix("Z"))  # also years before 1000, which strptime's %Y refuses


def _row(snap: Snapshot) -> tuple[Any, ...]:
    key, value = snap.segment or (None, None)
    start, end = snap.window
    return (snap.snapshot_id, snap.tenant_id, snap.journey, snap.scope, key, value,
            snap.release, _ts(start), _ts(end), snap.payload_json)


def write_snapshots(con: Any, snapshots: Sequence[Snapshot]) -> int:
    """Store the snapshots in one transaction; returns how many were new."""
    ensure_table(con)
    rows = [_row(s) for s in snapshots]
    con.execute("BEGIN TRANSACTION")
    try:
        written = _insert_new(con, rows)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return written


def _insert_new(con: Any, rows: list[tuple[Any, ...]]) -> int:
    ids = sorted({r[0] for r in rows})
    stored = dict(con.execute("SELECT snapshot_id, payload::VARCHAR FROM snapshots WHERE list_contains(?, snapshot_id)",
                              [ids]).fetchall()) if ids else {}
    fresh, seen = [], set()
    for row in rows:
        sid, payload = row[0], row[-1]
        if sid in stored:
            if stored[sid] != payload:
                raise StoreError(f"snapshot {sid} is already stored with different content and snapshots are "
                                 "immutable; rebuild with a new engine_version or a fresh workspace (-w)")
            continue
        if sid not in seen:
            seen.add(sid)
            fresh.append(row)
    if fresh:
        con.executemany(f"INSERT INTO snapshots ({', '.join(_COLUMNS)}, payload) VALUES ({', '.join('?' * 10)})", fresh)
    return len(fresh)


def list_snapshots(con: Any, *, journey: str | None = None, scope: str | None = None,
                   tenant_id: str | None = None) -> list[dict[str, Any]]:
    """One summary row per stored snapshot (no metrics), in a fixed order."""
    ensure_table(con)
    rows = con.execute("""
        SELECT snapshot_id, tenant_id, journey, scope, segment_key, segment_value, release, window_start, window_end,
               (payload->>'journeys')::BIGINT, (payload->>'completed')::BIGINT, (payload->>'censored')::BIGINT,
               (payload->>'mature')::BOOLEAN
        FROM snapshots
        WHERE ($journey IS NULL OR journey = $journey) AND ($scope IS NULL OR scope = $scope)
          AND ($tenant IS NULL OR tenant_id = $tenant)
        ORDER BY tenant_id, journey, scope, segment_key NULLS FIRST, segment_value NULLS FIRST,
                 release NULLS FIRST, window_start, snapshot_id""",
                       {"journey": journey, "scope": scope, "tenant": tenant_id}).fetchall()
    keys = _COLUMNS + ("journeys", "completed", "censored", "mature")
    out = [dict(zip(keys, r)) for r in rows]
    for row in out:  # JSON-ready: the same ISO form as the payload's window
        row["window_start"], row["window_end"] = iso(row["window_start"]), iso(row["window_end"])
    return out


def load_snapshot(con: Any, snapshot_id: str) -> Snapshot:
    """A stored snapshot by id, `snapshot:<id>`, or a unique id prefix."""
    ensure_table(con)
    key = snapshot_id.removeprefix("snapshot:")
    rows = con.execute("SELECT snapshot_id, payload::VARCHAR FROM snapshots WHERE starts_with(snapshot_id, ?) "
                       "ORDER BY snapshot_id LIMIT 2", [key]).fetchall()
    exact = [r for r in rows if r[0] == key]
    if exact:
        rows = exact
    if not rows:
        raise NotFound(f"no snapshot {snapshot_id!r} in this workspace; list them with `journeygraph snapshots`")
    if len(rows) > 1:
        raise BadInput(f"snapshot id prefix {snapshot_id!r} is ambiguous ({rows[0][0]}, {rows[1][0]}, …); "
                          "give more characters")
    return Snapshot(rows[0][1])


def snapshot_ids(con: Any) -> Iterable[str]:
    ensure_table(con)
    return [r[0] for r in con.execute("SELECT snapshot_id FROM snapshots ORDER BY snapshot_id").fetchall()]
