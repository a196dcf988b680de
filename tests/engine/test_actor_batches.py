"""Rows in any order put in (actor, seq) order, and cut into whole-actor chunks: nothing lost, no actor split."""

from __future__ import annotations

import numpy as np
import pytest

from engine.actor_batches import actor_order, chunk_bounds


@pytest.mark.parametrize("big", [False, True], ids=["one_int64_key", "lexsort"])
def test_actor_order_sorts_by_actor_then_seq(big: bool) -> None:
    rng = np.random.default_rng(7)
    sizes = rng.integers(1, 30, 200)
    actor = np.repeat(np.arange(len(sizes)), sizes)
    seq = np.concatenate([np.arange(n) for n in sizes]) + (2 ** 40 if big else 0)  # too big for the shifted key
    shuffled = rng.permutation(len(actor))
    order = actor_order(actor[shuffled], seq[shuffled])
    assert np.array_equal(actor[shuffled][order], actor)
    assert np.array_equal(seq[shuffled][order], seq)


def test_actor_order_keeps_a_high_seq_after_a_low_one_of_the_next_actor() -> None:
    """(actor 0, seq 2^31) sorts before (actor 1, seq 0): the seq must not spill into the actor's bits."""
    actor, seq = np.array([1, 0, 0]), np.array([0, 2 ** 31, 5])
    assert list(actor_order(actor, seq)) == [2, 1, 0]


@pytest.mark.parametrize(("sizes", "min_rows"), [
    ([1] * 50, 10), ([40, 1, 1, 30], 8), ([200], 10), ([3, 200, 2], 10), ([5, 5, 5], 1000), ([4, 4, 4, 4], 4),
], ids=["many_small", "mixed", "one_giant", "giant_in_the_middle", "fits_in_one", "exact"])
def test_chunks_cover_every_row_and_never_split_an_actor(sizes: list[int], min_rows: int) -> None:
    actor = np.repeat(np.arange(len(sizes)), sizes)
    new_actor = np.ones(len(actor), dtype=bool)
    new_actor[1:] = actor[1:] != actor[:-1]
    bounds = chunk_bounds(new_actor, min_rows)
    assert [lo for lo, _ in bounds][1:] == [hi for _, hi in bounds][:-1] and bounds[0][0] == 0 and bounds[-1][1] == len(actor)
    assert all(new_actor[lo] for lo, _ in bounds)
    assert all(hi - lo >= min_rows for lo, hi in bounds[:-1])
    firsts = np.flatnonzero(new_actor)
    for lo, hi in bounds[:-1]:  # each ends at the first actor that starts once the chunk is big enough
        assert hi == firsts[firsts >= lo + min_rows][0]
    lo = bounds[-1][0]
    assert len(actor) - lo <= min_rows or not (firsts >= lo + min_rows).any()  # the last: nothing left to cut off
