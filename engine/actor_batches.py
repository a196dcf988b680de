"""Rows of many actors, fetched in any order, put in (actor, seq) order by numpy and cut into whole-actor chunks.

Why numpy and not an ORDER BY: sequence work (seq, sessions, the journey rule)
needs each actor's rows together and in seq order, but only a few narrow
integer columns decide that order. DuckDB sorting ~10 M wide rows (text
payload, spilling) cost more than fetching them unsorted and sorting one
int64 key per row here; the wide text columns are then taken only at the rows
that are kept, never reordered as a whole.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

KEYS = ("tenant_id", "actor_id")
_SEQ_BITS = 32


def actor_order(actor: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Row positions in (actor, seq) order; (actor, seq) pairs must be unique, so the order is total.

    One int64 key (actor number in the high bits) when both fit; a stable sort (timsort) finds the
    ascending runs the input already has (silver files are sorted by actor), which a quicksort would not."""
    if not len(actor):
        return np.zeros(0, dtype=np.int64)
    if int(actor.min()) >= 0 and int(seq.min()) >= 0 and int(actor.max()) < 2 ** (63 - _SEQ_BITS) \
            and int(seq.max()) < 2 ** _SEQ_BITS:
        return np.argsort((np.asarray(actor, dtype=np.int64) << _SEQ_BITS) | np.asarray(seq, dtype=np.int64), kind="stable")
    return np.lexsort((seq, actor))


def chunk_bounds(new_actor: np.ndarray, min_rows: int) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) ranges covering every row, each at least `min_rows` rows (but the last) and each
    starting at an actor's first row (`new_actor`: True there), so no actor is split."""
    n = len(new_actor)
    firsts = np.flatnonzero(new_actor)
    cuts = [0]
    while n - cuts[-1] > min_rows:
        i = int(np.searchsorted(firsts, cuts[-1] + min_rows))  # the first actor starting at or after the target
        if i == len(firsts):
            break
        cuts.append(int(firsts[i]))
    return [(lo, hi) for lo, hi in zip(cuts, [*cuts[1:], n]) if hi > lo]


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
