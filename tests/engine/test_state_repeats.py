"""engine.state_estimates' repeat block takes the visitors' squared weights from its caller (one wv ** 2 for the
visitor sums and both repeat blocks) and sums w²·v·v from w²·v's buffer: bit for bit the sums it made before."""

from __future__ import annotations

import numpy as np
import pytest

from engine import state_estimates


def _reference(part, raw, wv, conv, visits, state, k):
    """`_repeats` as it was, squaring the weights itself."""
    v = visits.astype(float)
    r = visits >= 2
    w_r, y_r, s_r = wv[r], conv[r].astype(float), state[r]
    rep = tuple(np.bincount(s_r, weights=x, minlength=k) for x in (w_r, w_r * y_r, w_r ** 2, w_r ** 2 * y_r))
    raw_r = (np.bincount(s_r, weights=w_r > 0, minlength=k).astype(np.int64),
             np.bincount(s_r, weights=(w_r > 0) & (y_r > 0), minlength=k).astype(np.int64))
    w2 = wv ** 2
    mean = state_estimates._hajek(part[0], np.bincount(state, weights=wv * v, minlength=k), part[2],
                                  np.bincount(state, weights=w2 * v, minlength=k),
                                  np.bincount(state, weights=w2 * v * v, minlength=k))
    return {"mean": mean, "share": state_estimates._hajek(part[0], rep[0], part[2], rep[2]),
            "repeat": state_estimates._hajek(*rep),
            "single": state_estimates._complement(part, rep, raw[0] - raw_r[0], raw[1] - raw_r[1]), "raw": raw_r[0]}


@pytest.mark.parametrize("seed", range(12))
def test_repeats_with_the_callers_squares_are_the_old_sums(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k = int(rng.choice([0, 1, 60, 5000])), int(rng.choice([1, 5, 30]))
    state = rng.integers(0, k, n)
    wv = np.where(rng.random(n) < 0.3, 0.0, np.exp(rng.normal(0, 8, n)))  # far apart: the order shows in the bits
    conv = rng.random(n) < 0.4
    visits = 1 + rng.geometric(0.4, n) * (rng.random(n) < 0.5)  # singles and repeaters, up to dozens of visits
    w2 = wv ** 2
    part, raw, raw_y = state_estimates._visitor_sums(state, wv, conv, k, w2)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(part, state_estimates._visitor_sums(state, wv, conv, k)[0]))
    got = state_estimates._repeats(part, (raw, raw_y), wv, w2, conv, visits, state, k)
    want = _reference(part, (raw, raw_y), wv, conv, visits, state, k)
    for key, value in want.items():
        if key == "raw":
            assert got[key].dtype == value.dtype and np.array_equal(got[key], value)
        else:
            assert all(g.tobytes() == w.tobytes() for g, w in zip(got[key], value, strict=True)), key


def test_block_hands_both_sums_the_visitors_squared_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    """`block` squares the visitors' weights once and gives exactly wv ** 2 to the visitor sums and both repeat
    blocks (the plain and the lifecycle one)."""
    rng = np.random.default_rng(1)
    n = 400
    j = state_estimates.Journeys(known_t=rng.uniform(1, 100, n), ended=rng.random(n) < 0.7,
                                 follow=rng.uniform(50, 200, n), censored=rng.random(n) < 0.5,
                                 converted=rng.random(n) < 0.3)
    pos = rng.integers(0, n, 900)
    state, visits = rng.integers(0, 4, 900), 1 + rng.integers(0, 3, 900)
    w = np.exp(rng.normal(0, 3, n))
    seen: list[np.ndarray] = []
    real_sums, real_repeats = state_estimates._visitor_sums, state_estimates._repeats

    def sums(state, wv, conv, k, w2=None):
        seen.append(w2)
        return real_sums(state, wv, conv, k, w2)

    def repeats(part, raw, wv, w2, *rest):
        seen.append(w2)
        return real_repeats(part, raw, wv, w2, *rest)

    monkeypatch.setattr(state_estimates, "_visitor_sums", sums)
    monkeypatch.setattr(state_estimates, "_repeats", repeats)
    state_estimates.block(j, pos, state, visits, visits + 1, ["a", "b", "c", "d"], w)
    assert len(seen) == 3 and all(s is not None and s.tobytes() == (w[pos] ** 2).tobytes() for s in seen)


class _Rows:
    def __init__(self, rng: np.random.Generator, cls: np.ndarray) -> None:
        n = len(cls)
        self.cls, self.aj_t, self.follow = cls, rng.uniform(1, 100, n), rng.uniform(50, 200, n)
        self.ended, self.censored, self.converted = rng.random(n) < 0.7, rng.random(n) < 0.5, rng.random(n) < 0.3


@pytest.mark.parametrize("classes", [[0, 1, 2, 3, 4], [1, 2], [2], [0, 2, 4], [1, 3], [4], [0, 1, 3, 4]])
@pytest.mark.parametrize("lifecycle", [False, True])
def test_of_scope_reads_one_run_of_rows_in_place_with_the_same_block(classes: list[int], lifecycle: bool,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A scope whose classes are one run of rows (next to each other, an empty class between included) reads its
    visits as slices: the same arrays `block` gets from the gathered rows, and views, not copies."""
    rng = np.random.default_rng(len(classes))
    cls = np.sort(rng.choice([0, 1, 3, 4], 300))  # class 2 holds no journey
    rows = _Rows(rng, cls)
    row = np.sort(rng.integers(0, len(cls), 1500))
    visits = state_estimates.Visits(row, rng.integers(0, 6, 1500), 1 + rng.integers(0, 3, 1500),
                                    1 + rng.integers(0, 4, 1500) if lifecycle else None, list("abcdef"))
    lo, hi = np.searchsorted(cls, classes, side="left"), np.searchsorted(cls, classes, side="right")
    take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi)])
    w = np.exp(rng.normal(0, 3, len(take)))
    got: list[tuple] = []
    monkeypatch.setattr(state_estimates, "block", lambda *a: got.append(a) or {})
    state_estimates.of_scope(rows, take, visits, lo, hi, w)
    from engine.snapshot_estimates import _members

    pick, pos = _members(row, lo, hi)
    j, g_pos, g_state, g_visits, g_lc = got[0][:5]
    assert np.array_equal(g_pos, pos) and np.array_equal(g_state, visits.state[pick])
    assert np.array_equal(g_visits, visits.visits[pick])
    assert (g_lc is None) if not lifecycle else np.array_equal(g_lc, visits.lifecycle[pick])
    for field in ("known_t", "ended", "follow", "censored", "converted"):
        assert np.array_equal(getattr(j, field), {"known_t": rows.aj_t}.get(field, getattr(rows, field, None))[take])
    one_run = bool((hi[:-1] == lo[1:]).all()) and len(take) > 0  # (an empty view shares no memory)
    assert np.shares_memory(g_state, visits.state) == one_run and np.shares_memory(j.follow, rows.follow) == one_run
