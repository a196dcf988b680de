"""engine.path_codes: equal paths get equal codes and different paths different ones, hash collisions included."""

import numpy as np
import pyarrow as pa
import pytest

from engine import path_codes
from engine.paths import SEP


def _journeys(seed: int, n: int = 400, states: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """Journeys of 1-6 steps over few states (so many paths repeat), rows 0..n-1 with every third row empty."""
    rng = np.random.default_rng(seed)
    paths = [[] if r % 3 == 2 else rng.integers(0, states, rng.integers(1, 7)).tolist() for r in range(n)]
    row = np.repeat(np.arange(n), [len(p) for p in paths])
    state = np.array([s for p in paths for s in p], dtype=np.int64)
    new = np.ones(len(row), dtype=bool)
    new[1:] = row[1:] != row[:-1]
    return row, state, new, paths


def _check(codes: path_codes.PathCodes, paths: list[list[int]], names: list[str]) -> None:
    for r, p in enumerate(paths):
        assert codes.length[r] == len(p)
        if not p:
            assert codes.code[r] == -1
            continue
        assert codes.text(int(codes.code[r])) == SEP.join(names[s] for s in p)
    by_path: dict[tuple[int, ...], set[int]] = {}
    for r, p in enumerate(paths):
        if p:
            by_path.setdefault(tuple(p), set()).add(int(codes.code[r]))
    assert all(len(c) == 1 for c in by_path.values())                      # equal paths, one code
    assert len({next(iter(c)) for c in by_path.values()}) == len(by_path)  # different paths, different codes
    seen = [int(c) for c in codes.code if c >= 0]
    assert list(dict.fromkeys(seen)) == list(range(len(by_path)))          # numbered by first appearance


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_codes_group_equal_paths_exactly(seed):
    row, state, new, paths = _journeys(seed)
    names = ["a", "b", "c", "d"]
    _check(path_codes.of(row[new], state, new, len(paths), names), paths, names)


def test_a_hash_that_collides_falls_back_to_exact_grouping(monkeypatch):
    """With a zero multiplier every path of one length hashes alike: the check must catch it."""
    monkeypatch.setattr(path_codes, "_MULTIPLIER", np.uint64(0))
    row, state, new, paths = _journeys(7)
    names = ["a", "b", "c", "d"]
    _check(path_codes.of(row[new], state, new, len(paths), names), paths, names)


def test_no_steps():
    codes = path_codes.of(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), 3, [])
    assert codes.code.tolist() == [-1, -1, -1] and codes.length.tolist() == [0, 0, 0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("share", [0.0, 0.3, 0.9, 1.0])
def test_known_ids_give_the_same_codes(seed, share):
    """Journeys carrying an exact path id (engine.paths.path_ids, as the completed ones do) are grouped through
    it: codes, numbering and the first journey of each code are those of hashing every journey."""
    from engine.paths import path_ids

    row, state, new, paths = _journeys(seed)
    names = ["a", "b", "c", "d"]
    starts = np.flatnonzero(new)
    rng = np.random.default_rng(seed + 10)
    with_id = rng.random(len(starts)) < share
    known = np.full(len(paths), -1, dtype=np.int64)
    picked = np.flatnonzero(with_id)
    sub_size = np.diff(np.append(starts, len(state)))[picked]
    at = np.concatenate([np.arange(starts[j], starts[j] + k) for j, k in zip(picked, sub_size)]) if len(picked) else (
        np.zeros(0, np.int64))
    _, ids = path_ids(state[at], np.cumsum(sub_size) - sub_size, pa.array(names))
    known[row[starts[picked]]] = ids
    want = path_codes.of(row[new], state, new, len(paths), names)
    got = path_codes.of(row[new], state, new, len(paths), names, known)
    for field in ("length", "code", "first", "size"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    _check(got, paths, names)
