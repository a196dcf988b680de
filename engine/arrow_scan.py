"""Arrow tables handed to DuckDB for scanning.

DuckDB scans a registered Arrow table one record batch per thread, so a table
built from numpy arrays (a single batch) would be read on one core; cutting it
into batches lets an INSERT … SELECT over it run on all of them.
"""

from __future__ import annotations

import pyarrow as pa

BATCH_ROWS = 65_536


def in_batches(table: pa.Table, rows: int = BATCH_ROWS) -> pa.Table:
    """The same rows, in the same order, in record batches of at most `rows`."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows), schema=table.schema)
