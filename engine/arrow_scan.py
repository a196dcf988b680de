"""Arrow tables handed to DuckDB for scanning, and query results fetched from it.

DuckDB scans a registered Arrow table one record batch per thread, so a table
built from numpy arrays (a single batch) would be read on one core; cutting it
into batches lets an INSERT … SELECT over it run on all of them.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

BATCH_ROWS = 65_536


def in_batches(table: pa.Table, rows: int = BATCH_ROWS) -> pa.Table:
    """The same rows, in the same order, in record batches of at most `rows`."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)


def fetch(con: Any, sql: str, params: Any = None, rows: int = 1_000_000) -> pa.Table:
    """A query's whole result as Arrow, streamed out in batches of `rows`.

    Why not `to_arrow_table()`: that materialises the result inside DuckDB first, under the run's
    memory limit, where it cannot spill; at 10 M events a sorted step table hit the limit. Streamed,
    DuckDB's sort spills as it may and the batches live in Arrow memory outside the limit."""
    reader = con.sql(sql, params=params).to_arrow_reader(rows)
    return reader.read_all()
