"""Every step of one journey definition, read once per snapshot build, as numpy arrays in (journey, step) order.

engine.snapshot used to read `journey_steps` (a view over the gold Parquet
files) once per question: completed steps, open journeys' resolved steps, the
last step time of dropped journeys, steps near the outcome event, the data
end. Each read joined 10 M steps to the journeys on a string key (4.6 CPU-s at
10 M events). Here one plain scan becomes integer arrays that every count
reads (engine.step_counts, engine.outcome_adjacent, engine.snapshot_progress).

A journey is named by its `rowid` in `journeys` (`jix`): the snapshot's
per-journey tables carry it, so per-journey values come back as arrays indexed
by it. Steps are stored sorted by (journey_id, step), so a scan yields each
journey as one run of rows, already in step order: only the runs' ids (one per
journey, not per step) are looked up among the journeys. Steps of a journey id
that `journeys` lacks are dropped, as the joins they replace did.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

NULL_TS = np.iinfo(np.int64).min  # a NULL step time (µs since the epoch otherwise)
FETCH_ROWS = 1_000_000  # rows per fetched batch: the step strings never sit in memory all at once

_SHARED: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, tuple[str, StepArrays]] = weakref.WeakKeyDictionary()
_JOURNEYS_SQL = "SELECT rowid AS jix, journey_id, hash(journey_id) AS h FROM journeys WHERE journey = $journey"
_STEPS_SQL = "SELECT hash(journey_id) AS h, journey_id, step, state, ts FROM journey_steps WHERE journey = $journey"


@dataclass(frozen=True)
class StepArrays:
    """Steps grouped by journey, each journey's in step order: the journey's rowid (jix), state code
    (-1: NULL state) and time. `size` bounds every jix, so per-journey arrays that long are indexed by it."""

    jix: np.ndarray
    state: np.ndarray
    names: pa.Array  # state code -> name
    ts: np.ndarray   # int64 µs, NULL_TS for NULL
    size: int
    journey_ids: pa.Array  # jix -> journey_id (null where jix is not a journey of the definition)

    def last_ts(self) -> tuple[np.ndarray, np.ndarray]:
        """(jix, latest step time) of every journey with a step; NULL_TS when none of its times is known."""
        if not len(self.jix):
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        new = np.ones(len(self.jix), dtype=bool)
        new[1:] = self.jix[1:] != self.jix[:-1]
        starts = np.flatnonzero(new)
        return self.jix[starts], np.maximum.reduceat(self.ts, starts)


@contextmanager
def shared(con: duckdb.DuckDBPyConnection, journey: str, steps: StepArrays) -> Iterator[None]:
    """`fetch` on this connection hands out `steps` for `journey` until the block ends (engine.snapshot holds
    them over a build, so every reader of the steps, engine.snapshot_estimates' included, scans once)."""
    _SHARED[con] = (journey, steps)
    try:
        yield
    finally:
        _SHARED.pop(con, None)


def fetch(con: duckdb.DuckDBPyConnection, journey: str) -> StepArrays:
    """One scan of `journey`'s steps into StepArrays (or the ones `shared` holds for this connection)."""
    held = _SHARED.get(con)
    if held is not None and held[0] == journey:
        return held[1]
    ids = con.sql(_JOURNEYS_SQL, params={"journey": journey}).to_arrow_table()
    rowid = ids.column("jix").to_numpy().astype(np.int64)
    size = int(rowid.max(initial=-1)) + 1
    runs = _scan(con, journey)
    run_jix = _lookup(runs, ids, rowid)
    lens = runs.lengths()
    state, names = _state_codes(runs.states)
    jix, step, ts = np.repeat(run_jix, lens), _concat(runs.steps, np.int32), _concat(runs.times, np.int64)
    if np.any(run_jix < 0):
        keep = jix >= 0
        jix, step, state, ts = jix[keep], step[keep], state[keep], ts[keep]
    if not _grouped(run_jix[run_jix >= 0], lens[run_jix >= 0], size, step):
        order = step_order(jix, step)
        jix, state, ts = jix[order], state[order], ts[order]
    by_jix = np.full(size, -1, dtype=np.int64)
    by_jix[rowid] = np.arange(len(rowid), dtype=np.int64)
    journey_ids = ids.column("journey_id").combine_chunks().take(pa.array(by_jix, mask=by_jix < 0))
    return StepArrays(jix=jix, state=state, names=names, ts=ts, size=size, journey_ids=journey_ids)


def _scan(con: duckdb.DuckDBPyConnection, journey: str) -> _Runs:
    """The steps in storage order: each file holds whole journeys sorted by (journey_id, step), so with the
    insertion order kept (no dearer at 10 M steps) every journey arrives as one run, its steps in order."""
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()[0][0]
    con.execute("SET preserve_insertion_order = true")
    try:
        runs = _Runs()
        for batch in con.sql(_STEPS_SQL, params={"journey": journey}).to_arrow_reader(FETCH_ROWS):
            runs.add(batch)
        return runs
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if before else 'false'}")


class _Runs:
    """A scan's rows as runs of one journey id (its string and hash), plus each row's step, state and time."""

    def __init__(self) -> None:
        self.ids: list[pa.Array] = []
        self.hashes: list[np.ndarray] = []
        self.lens: list[np.ndarray] = []
        self.steps: list[np.ndarray] = []
        self.states: list[pa.DictionaryArray] = []
        self.times: list[np.ndarray] = []
        self.last: str | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        h, jid = batch.column(0).to_numpy(), batch.column(1)
        if not len(jid):
            return
        new = np.ones(len(jid), dtype=bool)
        new[1:] = pc.not_equal(jid.slice(1), jid.slice(0, len(jid) - 1)).to_numpy(zero_copy_only=False)
        starts = np.flatnonzero(new)  # a change of string, not of hash: exact even if two ids shared a hash
        lens = np.diff(np.append(starts, len(jid)))
        if self.lens and jid[0].as_py() == self.last:  # the previous batch's last journey goes on
            self.lens[-1][-1] += lens[0]
            starts, lens = starts[1:], lens[1:]
        self.last = jid[len(jid) - 1].as_py()
        self.ids.append(jid.take(pa.array(starts, pa.int64())))
        self.hashes.append(h[starts])
        self.lens.append(lens)
        self.steps.append(_numpy(batch.column(2), -1))  # -1: the lexsort fallback
        self.states.append(pc.dictionary_encode(batch.column(3)))
        self.times.append(_numpy(batch.column(4).cast(pa.int64()), NULL_TS))

    def lengths(self) -> np.ndarray:
        return _concat(self.lens, np.int64)


def _lookup(runs: _Runs, ids: pa.Table, rowid: np.ndarray) -> np.ndarray:
    """Each run's journey rowid, -1 when `journeys` lacks its id.

    Found by the ids' hashes (a sorted search: a hash table of 1 M strings cost 1.2 CPU-s), then checked
    string by string; a hash shared by two journeys (never seen) falls back to the string lookup."""
    run_ids = pa.chunked_array(runs.ids, pa.string()).combine_chunks()
    journey_ids = ids.column("journey_id").combine_chunks()
    h = ids.column("h").to_numpy()
    by_hash = np.argsort(h, kind="stable")
    sorted_h = h[by_hash]
    if not len(h) or not len(run_ids):
        return np.full(len(run_ids), -1, dtype=np.int64)
    if np.any(sorted_h[1:] == sorted_h[:-1]):
        where = pc.index_in(run_ids, value_set=journey_ids)
        found = pc.fill_null(where, 0).to_numpy(zero_copy_only=False).astype(np.int64)
        return np.where(pc.is_valid(where).to_numpy(zero_copy_only=False), rowid[found], -1)
    run_h = _concat(runs.hashes, np.uint64)
    keys = np.argsort(run_h)  # sorted keys: the search walks the array once instead of jumping (0.67 -> 0.13 s)
    pos = np.empty(len(run_h), dtype=np.int64)
    pos[keys] = np.minimum(np.searchsorted(sorted_h, run_h[keys]), len(h) - 1)
    found = by_hash[pos]
    same = pc.equal(run_ids, journey_ids.take(pa.array(found)))
    return np.where(pc.fill_null(same, False).to_numpy(zero_copy_only=False), rowid[found], -1)


def _grouped(run_jix: np.ndarray, lens: np.ndarray, size: int, step: np.ndarray) -> bool:
    """Whether every journey is one run with ascending steps (what StepArrays promises)."""
    if np.any(np.bincount(run_jix, minlength=size) > 1):
        return False
    rising = np.diff(step) > 0
    rising[np.cumsum(lens)[:-1] - 1] = True  # where one run ends and the next begins
    return bool(rising.all())


def _numpy(column: pa.Array, null: int) -> np.ndarray:
    return (pc.fill_null(column, null) if column.null_count else column).to_numpy(zero_copy_only=False)


def _concat(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


def _state_codes(chunks: list[pa.DictionaryArray]) -> tuple[np.ndarray, pa.Array]:
    """The batches' dictionary-encoded states under one dictionary; a NULL state becomes -1."""
    if not chunks:
        return np.zeros(0, np.int64), pa.array([], pa.string())
    unified = pa.chunked_array(chunks).unify_dictionaries()
    codes = [pc.fill_null(c.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False) for c in unified.chunks]
    return np.concatenate(codes), unified.chunk(0).dictionary.cast(pa.string())


def step_order(jix: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Row order by (journey, step).

    The journey rule numbers each journey's steps 0..k-1, so a row's place is its journey's first slot
    plus its step: a scatter, no sort (10 M steps: 1.5 s of lexsort). Anything else (a gap or a repeat
    in the numbering) falls back to the lexsort, so the order is right either way.
    """
    n = len(jix)
    if not n:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(jix)
    in_range = step.min() >= 0 and bool(np.all(step < counts[jix]))
    if in_range:
        slot = (np.cumsum(counts) - counts)[jix] + step
        filled = np.zeros(n, dtype=bool)
        filled[slot] = True
        if filled.all():  # n rows in n distinct slots: a permutation
            order = np.empty(n, dtype=np.int64)
            order[slot] = np.arange(n, dtype=np.int64)
            return order
    return np.lexsort((step, jix))
