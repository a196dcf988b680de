"""Steps grouped by (journey, source) and by (journey, source, destination) from one sort
(engine.step_shares.counted), and the journey-clustered variance of `resolved_shares` built on those groups.

The grouping must be np.unique's, group for group and step for step (the snapshot's sums add in that order,
so any other order changes a float); the variance must be the per-journey sandwich, not the per-step one.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import step_shares


def _journeys(rng: np.random.Generator, n_journeys: int, k: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Journey places of steps ordered by journey (places with gaps, as a scope's subset has; lengths 0..max_len,
    many single-step journeys) and source states drawn from k, so journeys with more steps than k loop."""
    lengths = rng.integers(0, max_len + 1, n_journeys)
    lengths[rng.random(n_journeys) < 0.3] = 1
    places = np.sort(rng.choice(max(3 * n_journeys, 1), n_journeys, replace=False))
    pos = np.repeat(places, lengths)
    return pos, rng.integers(0, k, len(pos))


def _check(pos: np.ndarray, src: np.ndarray, dst: np.ndarray, k: int, entered: np.ndarray | None = None) -> None:
    """counted's groups against np.unique's: (journey, source) and (journey, source, destination); `entered`:
    entry times, the late ones past positivity (left out before grouping)."""
    s = np.zeros(len(pos)) if entered is None else entered
    steps = step_shares.Steps(row=pos, s=s, known_t=np.full(len(pos), np.nan), src=src, dst=dst,
                              names=[f"s{i}" for i in range(k)])
    done = step_shares.counted(steps, np.arange(len(pos)), pos, np.array([12.0, 3.0]), 30.0, 5)
    assert np.array_equal(done.pick, np.flatnonzero(s + 5 <= 12.0))
    pos, src, dst = pos[done.pick], src[done.pick], dst[done.pick]
    key = pos.astype(np.int64) * k + src
    ref_key, ref_inv = np.unique(key, return_inverse=True)
    assert np.array_equal(done.group_inv, ref_inv)
    assert np.array_equal(done.group_pos.astype(np.int64) * k + done.group_state, ref_key)
    cell_key = key * k + dst
    assert np.array_equal(done.cell_order, np.argsort(cell_key, kind="stable"))  # a group's steps in their order
    ref_cells, ref_cell_inv = np.unique(cell_key, return_inverse=True)
    cell_inv = np.empty(len(pos), dtype=np.int64)
    cell_inv[done.cell_order] = np.cumsum(done.cell_new) - 1
    assert np.array_equal(cell_inv, ref_cell_inv) and int(done.cell_new.sum()) == len(ref_cells)


@pytest.mark.parametrize("seed", range(60))
def test_groups_are_np_uniques(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_journeys = int(rng.choice([0, 1, 5, 300]))
    k = int(rng.choice([1, 2, 7, 40]))
    max_len = int(rng.choice([1, 2, 12, 130]))
    pos, src = _journeys(rng, n_journeys, k, max_len)
    late = rng.random() < 0.5  # some steps entered too late for any journey of the scope to resolve
    _check(pos, src, rng.integers(0, k, len(pos)), k, rng.random(len(pos)) * 10.0 if late else None)


def test_groups_of_unsorted_or_wide_journey_places() -> None:  # (the grouping is a sort: any order works)
    rng = np.random.default_rng(7)
    pos, src = _journeys(rng, 200, 5, 9)
    dst = rng.integers(0, 5, len(pos))
    _check(rng.permutation(pos), src, dst, 5)  # not by journey
    _check((pos + 2**28).astype(np.int32), src.astype(np.int32), dst.astype(np.int32), 5)  # keys past int32


def _scope(seed: int, n_journeys: int = 300) -> tuple[step_shares.Steps, step_shares.Counted, np.ndarray]:
    """A scope whose journeys loop a → {b, c} with a journey-specific lean: steps of one journey are alike,
    so clustering by journey matters; follow-ups and entry times make unequal IPCW weights."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 9, n_journeys)
    row = np.repeat(np.arange(n_journeys), lengths)
    lean = rng.random(n_journeys)
    dst = np.where(rng.random(len(row)) < lean[row], 1, 2)
    src = np.where(rng.random(len(row)) < 0.2, 1, 0)  # some steps out of b too: two source states
    s = rng.random(len(row)) * 5.0
    follow = 4.0 + rng.random(n_journeys) * 30.0  # some shorter than a step's horizon: weights above 1
    steps = step_shares.Steps(row=row, s=s, known_t=np.full(len(row), np.nan), src=src, dst=dst,
                              names=["a", "b", "c"])
    return steps, step_shares.counted(steps, np.arange(len(row)), row, follow, 30.0, 5), follow


def _reference_var(pos: np.ndarray, src: np.ndarray, dst: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """The clustered variance through np.unique's groups (the definition the snapshot's sums follow)."""
    cell = src * k + dst
    a_key, a_inv = np.unique(pos * k * k + cell, return_inverse=True)
    b_key, b_inv = np.unique(pos * k + src, return_inverse=True)
    a_sum, b_sum = np.bincount(a_inv, weights=w), np.bincount(b_inv, weights=w)
    total, mass = np.bincount(src, weights=w, minlength=k), np.bincount(cell, weights=w, minlength=k * k)
    share = np.zeros(k * k)
    share[cell] = mass[cell] / total[src]
    a_cell = a_key % (k * k)
    b_of_a = b_sum[np.searchsorted(b_key, (a_key // (k * k)) * k + a_cell // k)]
    sum_a2 = np.bincount(a_cell, weights=a_sum ** 2, minlength=k * k)
    sum_ab = np.bincount(a_cell, weights=a_sum * b_of_a, minlength=k * k)
    sum_b2 = np.bincount(b_key % k, weights=b_sum ** 2, minlength=k)[np.arange(k * k) // k]
    return np.maximum(sum_a2 - 2 * share * sum_ab + share ** 2 * sum_b2, 0.0)


@pytest.mark.parametrize("seed", range(5))
def test_clustered_variance_adds_in_the_reference_order(seed: int) -> None:
    steps, done, _ = _scope(seed)
    k = len(steps.names)
    src, dst = steps.src[done.pick], steps.dst[done.pick]
    mass = np.bincount(src * k + dst, weights=done.w, minlength=k * k)
    of_src = np.bincount(src, weights=done.w, minlength=k)[np.arange(k * k) // k]
    share = np.divide(mass, of_src, out=np.zeros(k * k), where=of_src > 0)
    got = step_shares._clustered_var(done, steps, share)
    assert np.array_equal(got, _reference_var(done.pos, src, dst, done.w, k))  # bit for bit


def test_standard_error_is_clustered_by_journey() -> None:
    steps, done, follow = _scope(11)
    assert len(np.unique(np.round(done.w, 9))) > 3  # unequal weights: they enter the variance
    got = {(e["from"], e["to"]): e for e in step_shares.shares(steps, done.pick, done.pos, follow, 30.0, 5, done)}
    src, dst, w, row = steps.src[done.pick], steps.dst[done.pick], done.w, done.pos
    for a, b in ((0, 1), (0, 2), (1, 1)):
        out_a = src == a
        p = w[out_a & (dst == b)].sum() / w[out_a].sum()
        resid = np.where(out_a, w * ((dst == b) - p), 0.0)
        clustered = np.sqrt(np.sum(np.bincount(row, weights=resid) ** 2)) / w[out_a].sum()
        per_step = np.sqrt(np.sum(resid ** 2)) / w[out_a].sum()
        entry = got[(steps.names[a], steps.names[b])]
        assert entry["share"] == pytest.approx(p, abs=1e-6)
        assert entry["se"] == pytest.approx(clustered, abs=2e-6)
        if a == 0:  # a journey's several steps out of a lean alike: the data tell the two apart
            assert abs(per_step - clustered) > 0.2 * clustered


def test_empty_scope_has_no_shares() -> None:
    steps, _, follow = _scope(1)
    none = np.zeros(0, dtype=np.int64)
    done = step_shares.counted(steps, none, none, follow, 30.0, 5)
    assert done.group_inv.size == 0 and done.group_pos.size == 0 and done.cell_order.size == 0
    assert step_shares.shares(steps, none, none, follow, 30.0, 5, done) == []


@pytest.mark.parametrize("seed", range(6))
def test_group_weights_shared_by_the_loss_block_and_the_shares(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """GroupWeights computed once for a scope: B per (journey, source) group and Σ B² per source state, the loss
    block's B_js / `bb` and the shares' B_ja / Σ B² to the bit (weights spread over magnitudes, many steps per
    group, so another sum order would show); the shares take B (it is gone from the holder after), and the loss
    block and the shares give the same floats with the shared weights as each computing its own."""
    from engine import loss_estimates, snapshot

    monkeypatch.setattr(snapshot, "r6", lambda v: v)  # every float unrounded: a last bit would show
    rng = np.random.default_rng(seed)
    k = 6
    pos, src = _journeys(rng, 400, k - 1, 30)
    steps = step_shares.Steps(row=pos, s=np.zeros(len(pos)), known_t=rng.uniform(0.5, 40.0, len(pos)), src=src,
                              dst=rng.integers(0, k, len(pos)), names=[f"s{i}" for i in range(k - 1)] + ["lost"])
    follow = rng.uniform(1.0, 40.0, int(pos.max(initial=0)) + 1) * rng.choice([1.0, 1e-3, 1e3], int(pos.max(initial=0)) + 1)
    done = step_shares.counted(steps, np.arange(len(pos)), pos, follow, 30.0, 5)
    moves = step_shares.GroupWeights(done, k)
    ref_b = np.zeros(len(done.group_state))
    for i, g in enumerate(done.group_inv):  # one step at a time, in step order: np.bincount's order
        ref_b[g] += done.w[i]
    ref_b2 = np.zeros(k)
    for g, s in enumerate(done.group_state):
        ref_b2[s] += ref_b[g] * ref_b[g]
    assert moves.b.tobytes() == ref_b.tobytes() and moves.sum_b2.tobytes() == ref_b2.tobytes()
    args = (steps, done, follow, 30.0, 5)
    loss = loss_estimates.block(*args, ["lost"], moves)
    assert loss == loss_estimates.block(*args, ["lost"])
    assert {s: e["bb"] for s, e in loss["states"].items()} == {steps.names[s]: float(ref_b2[s]) for s in
                                                               np.flatnonzero(np.bincount(done.group_state, minlength=k))}
    assert list(next(iter(loss["states"].values()))) == ["moves", "exits", "journeys", "moves_weight", "exit_weight",
                                                         *loss_estimates._STATE_MOMENTS]  # the payload's key order
    assert step_shares.shares(steps, done.pick, done.pos, follow, 30.0, 5, done, moves) == \
        step_shares.shares(steps, done.pick, done.pos, follow, 30.0, 5, done)
    with pytest.raises(ValueError, match="taken"):
        moves.take()
