"""Cut a stream of rows sorted by (tenant_id, actor_id) into tables that each hold whole actors.

Why: sequence work (seq, sessions, the journey rule) needs all of an actor's
rows at once, but 10 M events do not fit in memory as Arrow. DuckDB sorts
once (spilling as it needs) and streams record batches; this gathers about
`min_rows` rows, hands out everything up to the last actor that may still
continue in the next batch, and carries that actor over.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEYS = ("tenant_id", "actor_id")


def whole_actor_tables(reader: pa.RecordBatchReader, min_rows: int, keys: tuple[str, ...] = KEYS) -> Iterator[pa.Table]:
    """Consecutive slices of the sorted stream, each at least `min_rows` rows (but the last) and never splitting an actor
    (the rows with equal `keys`: the names, or engine.journeys' actor number)."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in reader:
        if not batch.num_rows:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < min_rows:
            continue
        table = pa.Table.from_batches(pending, schema=reader.schema)
        cut = _last_actor_start(table, keys)
        if cut < min_rows:  # mostly one long actor so far: keep reading until it ends
            continue
        yield table.slice(0, cut)
        rest = table.slice(cut)
        pending, rows = rest.to_batches(), rest.num_rows
    if rows:
        yield pa.Table.from_batches(pending, schema=reader.schema)


def _last_actor_start(table: pa.Table, keys: tuple[str, ...]) -> int:
    """Index of the first row of the table's last actor: rows are sorted, so its rows are a suffix."""
    same = None
    for key in keys:
        column = table.column(key)
        last = column[table.num_rows - 1]
        equal = pc.is_null(column) if not last.is_valid else pc.fill_null(pc.equal(column, last), False)
        same = equal if same is None else pc.and_(same, equal)
    return table.num_rows - pc.sum(same).as_py()


def new_actor_flags(table: pa.Table, keys: tuple[str, ...] = KEYS) -> np.ndarray:
    """True on the first row of each actor (equal `keys`) of a table sorted by them (Arrow compares, no Python loop)."""
    n = table.num_rows
    flags = np.zeros(n, dtype=bool)
    flags[:1] = True
    if n > 1:
        for key in keys:
            column = table.column(key).combine_chunks()
            flags[1:] |= pc.not_equal(column.slice(1), column.slice(0, n - 1)).fill_null(True).to_numpy(zero_copy_only=False)
    return flags
