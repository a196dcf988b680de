"""DuckDB settings for the heavy data stages (ingest, normalise, states, journeys), restored afterwards.

Why scoped rather than global: the workspace connection is shared with
later stages that may read tables without ORDER BY and rely on insertion
order, so `preserve_insertion_order = false` (which lets DuckDB run
CREATE TABLE AS / INSERT … SELECT in parallel without re-ordering buffers,
and spill less) is only on while our statements run; every table we write
whose order matters is written with an explicit ORDER BY, which DuckDB
keeps under this setting too. A memory limit makes big inputs (10 M events)
spill to the database's temp directory instead of growing the process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

MEMORY_LIMIT = os.environ.get("JOURNEYGRAPH_DUCKDB_MEMORY", "2GB")


@contextmanager
def engine_settings(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """preserve_insertion_order off and memory_limit on for the block; the previous values come back after."""
    wanted = {"preserve_insertion_order": "false", "memory_limit": MEMORY_LIMIT}
    before = {name: con.execute("SELECT current_setting(?)", [name]).fetchall()[0][0] for name in wanted}
    # Kept on (allocator-wide, not a query setting): without it DuckDB's jemalloc keeps the pages of dropped
    # tables, so a 10 M-event build held ≈ 0.7 GB it no longer used while numpy worked beside it.
    con.execute("SET allocator_background_threads = true")
    for name, value in wanted.items():
        con.execute(f"SET {name} = '{value}'")
    try:
        yield
    finally:
        for name, value in before.items():
            con.execute(f"SET {name} = '{value}'")


def quiet(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """`con` with DuckDB's progress bar printing nothing: it draws on stdout for any statement over 2 s (10 M
    events have many), which would break `run --format json` / `inspect --format json` and draw over the
    run's own progress bar. Both settings: `progress_bar_time` alone turns the bar back on."""
    con.execute("SET enable_progress_bar_print = false")
    con.execute("SET enable_progress_bar = false")
    return con
