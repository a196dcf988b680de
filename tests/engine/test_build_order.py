"""A scope's distinct (path, outcome) keys and its duration order read off the build's one sort
(engine.path_estimate_totals.BuildOrder) against the per-scope np.unique and stable argsort: the same integers,
so every share and median of `path_estimates` / `duration_estimates` is the same float."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from engine import ipcw, snapshot
from engine.path_estimate_totals import BuildOrder, ScopeRows, scope_block
from engine.paths import SEP


def _build(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Keys with gaps and repeats; whole-second durations (many ties), some NaN, a -0.0 beside 0.0."""
    key = rng.choice(rng.integers(0, 10 * n + 1, max(n // 3, 1)), n)
    dur = np.round(rng.exponential(5, n))
    dur[rng.random(n) < 0.1] = np.nan
    dur[rng.random(n) < 0.05] = -0.0
    return key, dur


def _scope(rng: np.random.Generator, n: int) -> np.ndarray:
    """A scope's build rows: ascending class ranges, as engine.snapshot_estimates takes them."""
    cuts = np.unique(rng.integers(0, n + 1, 10))
    keep = rng.random(len(cuts) - 1) < 0.6
    parts = [np.arange(a, b) for a, b, k in zip(cuts[:-1], cuts[1:], keep) if k]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


@pytest.mark.parametrize("seed", range(30))
def test_keys_and_duration_order_are_the_per_scope_sorts(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 9, 500]))
    key, dur = _build(rng, n)
    build = BuildOrder.of(key, dur)
    for _ in range(4):
        at = _scope(rng, n)
        ok = rng.random(len(at)) < 0.7
        keys, inverse = build.unique(at[ok])
        want_keys, want_inverse = np.unique(key[at[ok]], return_inverse=True)
        assert np.array_equal(keys, want_keys) and np.array_equal(inverse, want_inverse.reshape(-1))
        assert keys.dtype == want_keys.dtype and inverse.dtype == want_inverse.dtype
        sub = np.flatnonzero(ok)
        assert np.array_equal(build.by_duration(at, sub), sub[np.argsort(dur[at][sub], kind="stable")])


def test_scope_block_is_the_same_with_the_build_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot, "r6", lambda v: None if v is None else float(v))
    rng = np.random.default_rng(5)
    n = 3000
    key, dur = _build(rng, n)
    key %= 40
    at = _scope(rng, n)
    m = len(at)
    follow, known = np.round(rng.uniform(0, 80, m)), np.round(rng.uniform(0, 60, m))
    ok = (known <= follow) & (rng.random(m) < 0.9)
    rows = ScopeRows(known_t=known, ok=ok, follow=follow, key=key[at], seq=key[at] // 3,
                     converted=rng.random(m) < 0.3, censored=follow < 60, dur=dur[at],
                     length=rng.integers(1, 6, m).astype(float), names=[f"p{i // 3}{SEP}{SEP}o{i % 3}" for i in range(40)])
    w = ipcw.weights(known, ok, follow)
    alone = json.dumps(scope_block(rows, 8, w))
    built = dataclasses.replace(rows, build=BuildOrder.of(key, dur), at=at)
    assert json.dumps(scope_block(built, 8, w)) == alone
    shuffled = dataclasses.replace(built, build=BuildOrder.of(key, rng.permutation(dur)))  # the order is used
    assert json.dumps(scope_block(shuffled, 8, w)) != alone
