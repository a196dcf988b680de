"""Each journey's path (its states in order) as an integer code: equal paths, equal codes; text on demand.

The path estimates group journeys by (path, outcome) and show a few of them.
Joining every journey's state names into a string and dictionary-encoding the
strings did that in Arrow: at 10 M events it built ≈ 10 M name copies and
1.5 M path strings (seconds, and half a gigabyte the Arrow pool then kept).
Here a path is a polynomial hash of its state codes mod 2^64 (one multiply
and one segmented sum over the steps), the journeys are grouped by hash, and
the grouping is then *checked* exactly: every journey must equal its group's
first journey state by state. A hash collision (never seen) falls back to
grouping the joined strings, so codes are exact either way. Only the paths
that are shown are ever spelled out (`PathCodes.text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import int_width
from engine.paths import SEP

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd: its powers mod 2^64 never vanish
_LENGTH_MIX = np.uint64(0xC2B2AE3D27D4EB4F)


@dataclass(frozen=True)
class PathCodes:
    """Per journey row its path's length and code (-1: no path); per code where its first journey's states
    start in `states` and how many there are."""

    length: np.ndarray
    code: np.ndarray
    first: np.ndarray
    size: np.ndarray
    states: np.ndarray
    names: Sequence[str]

    def text(self, code: int) -> str:
        """The path of `code` as engine.step_counts writes paths (state names joined by the unit separator)."""
        at = int(self.first[code])
        return SEP.join(self.names[int(s)] for s in self.states[at: at + int(self.size[code])])


def of(owner: np.ndarray, state: np.ndarray, new_journey: np.ndarray, n_rows: int, names: Sequence[str],
       known: np.ndarray | None = None) -> PathCodes:
    """Codes of the paths made by the steps' states `state`, one journey after another, `new_journey` marking
    each journey's first step and `owner` each journey's row (one per journey: no step-sized array of rows is
    needed); rows without a step get length 0 and code -1. `known`: per row an id already equal
    exactly when the rows' paths are (engine.paths.path_ids of the completed journeys), -1 where none is
    known: then only one journey per known id and the rest are hashed (the codes are the same)."""
    starts = np.flatnonzero(new_journey)
    size = np.diff(np.append(starts, len(state))).astype(np.int64)
    if known is None:
        group_of, first = _group(state, starts, size)
    else:
        group_of, first = _group_known(state, starts, size, known[owner])
    length = np.zeros(n_rows, dtype=int_width.index_type(len(state)))  # a path is at most every step
    length[owner] = size
    code = np.full(n_rows, -1, dtype=int_width.index_type(n_rows))  # codes < journeys
    code[owner] = group_of
    return PathCodes(length=length, code=code, first=starts[first], size=size[first], states=state, names=names)


def _group(state: np.ndarray, starts: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per journey its group (codes numbered by first appearance) and per group its first journey."""
    if not len(starts):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    offset = np.arange(len(state), dtype=np.int64) - np.repeat(starts, size)
    powers = np.cumprod(np.full(int(size.max()), _MULTIPLIER, dtype=np.uint64))  # wraps mod 2^64, as meant
    with np.errstate(over="ignore"):
        terms = (state.astype(np.uint64) + np.uint64(1)) * powers[offset]
        hashes = np.add.reduceat(terms, starts) ^ (size.astype(np.uint64) * _LENGTH_MIX)
    _, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    rep = first[inverse]  # each journey's group's first journey
    same = bool(np.array_equal(size, size[rep]))
    if same:
        same = bool(np.array_equal(state, state[np.repeat(starts[rep], size) + offset]))
    if not same:  # two different paths share a hash: group the spelled-out paths instead (exact)
        inverse, first = _group_by_text(state, starts, size)
    return _by_appearance(inverse, first)


def _group_known(state: np.ndarray, starts: np.ndarray, size: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """_group's result when some journeys carry an exact path id (`ids`, -1: none). At 10 M events the
    completed journeys (most of them, already grouped by engine.paths.path_ids) hashed again cost a second:
    here each id's first journey stands for its journeys and only those and the journeys without an id are
    grouped. An id's journeys all come after its first, so the stand-ins in journey order appear as their
    groups do among all journeys: the numbering by first appearance is _group's."""
    n = len(starts)
    has = ids >= 0
    lead = np.full(int(ids.max(initial=-1)) + 1, n, dtype=np.int64)  # per id its first journey
    np.minimum.at(lead, ids[has], np.flatnonzero(has))
    pick = np.zeros(n, dtype=bool)
    pick[lead[lead < n]] = True
    pick |= ~has
    chosen = np.flatnonzero(pick)  # in journey order
    if len(chosen) == n:
        return _group(state, starts, size)
    sub_size = size[chosen]
    sub_starts = np.cumsum(sub_size) - sub_size
    at = np.repeat(starts[chosen] - sub_starts, sub_size) + np.arange(int(sub_size.sum()), dtype=np.int64)
    sub_group, sub_first = _group(state[at], sub_starts, sub_size)
    group_of = np.empty(n, dtype=np.int64)
    group_of[chosen] = sub_group
    group_of[has] = group_of[lead[ids[has]]]  # a journey with an id: its id's first journey's group
    return group_of, chosen[sub_first]


def _group_by_text(state: np.ndarray, starts: np.ndarray, size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    offsets = pa.array(np.append(starts, len(state)).astype(np.int64))
    codes = pa.array(state.astype(np.int64)).cast(pa.string())
    joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets, codes), ",")
    encoded = pc.dictionary_encode(joined)
    inverse = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.full(len(encoded.dictionary), len(inverse), dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(len(inverse), dtype=np.int64))
    return inverse, first


def _by_appearance(inverse: np.ndarray, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber groups in order of their first journey (the numbering does not depend on the hash)."""
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first), dtype=np.int64)
    return rank[inverse], first[order]
