"""Persist a run's derived tables in one transaction, on a background thread.

`engine.pipeline` builds `events`, `rejected_events`, `journeys` and
`journey_steps` as TEMP tables (in memory, shadowing the workspace's own for
its connection), so the stages after them read fast uncompressed data, and a
run killed half way leaves the previous run's tables whole. Writing them into
the database file (compressing ~2 M rows per million events) is then the only
slow step left, and nothing after the snapshots reads it: it runs on a
thread while detectors, facts and narration (pure Python) use the other core.
`Persist.wait()` must be called before the connection is used again.
"""

from __future__ import annotations

import threading
import duckdb

from engine.dbsettings import engine_settings

TABLES = ("events", "rejected_events", "journeys", "journey_steps")


class Persist:
    """Copies the TEMP derived tables into the database on a thread; `wait()` joins it and re-raises its error."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._con = con
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="journeygraph-persist", daemon=False)
        self._thread.start()

    def _run(self) -> None:
        try:
            persist(self._con)
        except BaseException as exc:  # handed to the caller's thread by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def persist(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the database's derived tables by this connection's TEMP ones, atomically, then drop the TEMP ones."""
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    present = {r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND table_name IN (SELECT unnest(?))", [list(TABLES)]).fetchall()}
    tables = [t for t in TABLES if t in present]
    with engine_settings(con):
        con.execute("BEGIN TRANSACTION")
        try:
            for table in tables:
                con.execute(f'CREATE OR REPLACE TABLE "{database}".main.{table} AS SELECT * FROM temp.main.{table}')
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    for table in tables:
        con.execute(f"DROP TABLE temp.main.{table}")
