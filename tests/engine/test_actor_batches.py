"""Whole-actor slices of a sorted stream: nothing lost, nothing reordered, no actor split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from engine.actor_batches import whole_actor_tables


def _stream(actors: list[int], batch_rows: int) -> pa.RecordBatchReader:
    table = pa.table({"tenant_id": ["t" if a % 3 else None for a in actors],   # null tenants sort together too
                      "actor_id": [f"a{a:05d}" for a in actors], "row": list(range(len(actors)))})
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch_rows))


@pytest.mark.parametrize(("sizes", "batch_rows", "min_rows"), [
    ([1] * 50, 7, 10), ([40, 1, 1, 30], 5, 8), ([200], 16, 10), ([3, 200, 2], 16, 10), ([5, 5, 5], 100, 1000),
], ids=["many_small", "mixed", "one_giant", "giant_in_the_middle", "fits_in_one"])
def test_slices_keep_every_row_in_order_and_never_split_an_actor(sizes, batch_rows, min_rows) -> None:
    actors = list(np.repeat(np.arange(len(sizes)), sizes))
    slices = list(whole_actor_tables(_stream(actors, batch_rows), min_rows))
    rows = [r for s in slices for r in s.column("row").to_pylist()]
    assert rows == list(range(len(actors)))
    seen = [set(s.column("actor_id").to_pylist()) for s in slices]
    assert all(not (a & b) for i, a in enumerate(seen) for b in seen[i + 1:])
    assert all(s.num_rows >= min_rows for s in slices[:-1])
