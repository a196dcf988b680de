"""A full run's journey steps, kept as the cut made them (Arrow) and written straight to the gold files.

Why: the steps went into the TEMP `journey_steps` table, and engine.silver read each gold file back out
of it joined to the journeys' ranks by id and sorted by (rank, step): at 10 M events an INSERT, a hash
join and a sort of 9.7 M rows. The cut already gives a journey's steps together and in step order, so
the file order (journey_id, step) is the journeys sorted by id with their steps' ranges laid end to end:
a sort of one id per journey and a gather. The files hold the same rows in the same order, cut into the
same row groups by engine.parquet_files, hence the same bytes and names; the manifest's digest is the
same SQL aggregate over the same values (an XOR, taken batch by batch as the file is written).

Only a full run in a workspace buffers (`start`): an incremental run's working steps mix the kept
journeys' stored steps with the new ones, and a bare connection's `journey_steps` is the table itself.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from engine.arrow_scan import in_batches
from engine.parquet_files import ROW_GROUP

_BUFFERS: weakref.WeakKeyDictionary[Any, StepBuffer] = weakref.WeakKeyDictionary()
# Arrow outside DuckDB's memory limit, about 40 bytes a step (9.7 M steps at 10 M events: ~0.4 GB): past this
# many the steps go to the TEMP table instead, which DuckDB can spill to disk (`keep`)
MAX_STEPS = 32_000_000
_STEPS = "_jg_cut_steps"  # steps registered for an INSERT or a digest
# row groups a file's digest query takes at once: one query a row group cost ~0.2 CPU-s more at 10 M events
# (a query's fixed cost of a few ms, 81 times); the XOR is the same however the rows are grouped. Four hold
# ~30 MB of steps (~8 MB a row group) a little longer; eight saved hardly more
DIGEST_BATCHES = 4
_IDS = "_jg_cut_ids"  # its journeys (global index g, journey_id), registered for their order and seal


@dataclass
class _Journey:
    """One journey definition's buffered chunks: journey ids per chunk and steps keyed by the chunk's index."""

    ids: list[pa.Array]
    steps: list[pa.Table]


@dataclass(frozen=True)
class _Plan:
    """One gold file's rows: `steps` rows `positions` in file order, the n-th of them a step of journey
    `ids[journey[n]]` (the file's journeys in id order, so `journey` ascends and its take reads in order)."""

    steps: pa.RecordBatch  # step, state, ts, event_id
    positions: np.ndarray
    ids: pa.Array
    journey: np.ndarray


class StepBuffer:
    """The steps each journey definition's cut gave, chunk by chunk, until `files` and `batches` write them."""

    def __init__(self) -> None:
        self._journeys: dict[str, _Journey] = {}
        self._plans: dict[tuple[str, bool], _Plan] = {}
        self._digests: dict[tuple[str, bool], int] = {}

    def add(self, journey: str, ids: pa.Array | pa.ChunkedArray, steps: pa.Table) -> None:
        """One chunk: `ids` the journey_id of its journeys 0..n-1, `steps` (jidx, step, state, ts, event_id)
        with jidx in 0..n-1, in (jidx, step) order."""
        held = self._journeys.setdefault(journey, _Journey([], []))
        held.ids.append(ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids)
        held.steps.append(steps)

    def __len__(self) -> int:
        return sum(t.num_rows for j in self._journeys.values() for t in j.steps)

    def insert_into(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        """Every buffered step into `table` (a layer's columns), and the buffer emptied."""
        for name, held in self._journeys.items():
            for ids, steps in zip(held.ids, held.steps, strict=True):
                con.register(_STEPS, steps.append_column("journey_id", ids.take(steps.column("jidx"))))
                try:
                    con.execute(f"INSERT INTO {table} SELECT $name, journey_id, step, state, ts, event_id FROM {_STEPS}",
                                {"name": name})
                finally:
                    con.unregister(_STEPS)
        self._journeys.clear()

    def files(self, con: duckdb.DuckDBPyConnection, sealed_ids: str | None, journey_ids: str | None
              ) -> list[tuple[str, bool, int]]:
        """(journey, sealed, rows) per gold file, in engine.silver._step_files' order; each file's rows are
        then `batches(con, journey, sealed, digest)`. `sealed_ids`/`journey_ids` (every journey with steps
        must be one; None: no check): SQL giving journey_id."""
        out = []
        for name in sorted(self._journeys):
            ids, g, steps = self._joined(name)
            counts = np.bincount(g, minlength=len(ids))
            order, sealed = _order_and_seal(con, ids, counts > 0, sealed_ids, journey_ids)
            for flag in (False, True):
                journeys = order[sealed[order] == flag]
                positions, journey = _spans(counts, journeys)
                if len(positions):
                    out.append((name, flag, len(positions)))
                    self._plans[(name, flag)] = _Plan(steps, positions, ids.take(journeys), journey)
            del self._journeys[name]
        return out

    def batches(self, con: duckdb.DuckDBPyConnection, journey: str, sealed: bool, digest: str
                ) -> Iterator[pa.RecordBatch]:
        """One file's rows (the layer's columns), ROW_GROUP at a time, and (once read to the end) its
        `digest(journey, sealed)`: the aggregate SQL `digest` over them, batch by batch (it is an XOR)."""
        plan = self._plans.pop((journey, sealed))
        name = pa.array([journey], type=pa.string())
        xor, undigested = 0, []
        for lo in range(0, len(plan.positions), ROW_GROUP):
            at = plan.positions[lo:lo + ROW_GROUP]
            rows = plan.steps.take(at)
            ids = plan.ids.take(plan.journey[lo:lo + ROW_GROUP])
            batch = pa.record_batch([name.take(np.zeros(len(at), dtype=np.int64)), ids, *rows.columns],
                                    names=["journey", "journey_id", *rows.column_names])
            undigested.append(batch)
            if len(undigested) == DIGEST_BATCHES or lo + ROW_GROUP >= len(plan.positions):
                xor ^= _digest(con, undigested, digest)
                undigested = []
            yield batch
        self._digests[(journey, sealed)] = xor

    def digest(self, journey: str, sealed: bool) -> int:
        """A written file's digest (`batches`)."""
        return self._digests[(journey, sealed)]

    def _joined(self, name: str) -> tuple[pa.Array, np.ndarray, pa.RecordBatch]:
        """(journey_id per g, g per step, steps in one chunk) for one definition, g numbering every chunk's journeys."""
        held = self._journeys[name]
        starts = np.cumsum([0, *(len(ids) for ids in held.ids)])
        g = np.concatenate([t.column("jidx").to_numpy() + start for t, start in zip(held.steps, starts, strict=False)])
        steps = pa.concat_tables([t.drop_columns(["jidx"]) for t in held.steps])
        one = pa.RecordBatch.from_arrays([c.combine_chunks() for c in steps.columns], names=steps.column_names)
        return pa.concat_arrays(held.ids), g, one


def _order_and_seal(con: duckdb.DuckDBPyConnection, ids: pa.Array, has_steps: np.ndarray, sealed_ids: str | None,
                    journey_ids: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(the journeys with steps in journey_id order, sealed flag per journey); refuses journeys `journey_ids` lacks."""
    sealed = f"journey_id IN ({sealed_ids})" if sealed_ids else "false"
    known = f"journey_id IN ({journey_ids})" if journey_ids else "true"
    g = np.flatnonzero(has_steps)
    con.register(_IDS, pa.table({"g": g, "journey_id": ids.take(pa.array(g))}))
    try:
        got = con.sql(f"SELECT g, {sealed} AS sealed, {known} AS known FROM {_IDS} "
                      "ORDER BY journey_id").to_arrow_table()
    finally:
        con.unregister(_IDS)
    if not got.column("known").to_numpy(zero_copy_only=False).all():
        raise RuntimeError("journey steps whose journey_id the given journey ids lack")
    order = got.column("g").to_numpy()
    flags = np.zeros(len(ids), dtype=bool)
    flags[order] = got.column("sealed").to_numpy(zero_copy_only=False)
    return order, flags


def _digest(con: duckdb.DuckDBPyConnection, batches: list[pa.RecordBatch], digest: str) -> int:
    """`digest` over batches of a layer's rows, as DuckDB computes it over the table."""
    con.register(_STEPS, in_batches(pa.Table.from_batches(batches)))
    try:
        return int(con.execute(f"SELECT {digest} FROM {_STEPS}").fetchall()[0][0])
    finally:
        con.unregister(_STEPS)


def _spans(counts: np.ndarray, journeys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the positions of `journeys`' steps, journey after journey; the index in `journeys` of each), given the
    steps per journey (`counts`) and each journey's steps contiguous and in journey order."""
    first = np.cumsum(counts) - counts
    lengths = counts[journeys]
    shift = np.repeat(first[journeys] - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(len(shift), dtype=np.int64) + shift, np.repeat(np.arange(len(journeys)), lengths)


def keep(con: duckdb.DuckDBPyConnection, journey: str, ids: pa.Array | pa.ChunkedArray, steps: pa.Table) -> bool:
    """Buffer one chunk's steps (StepBuffer.add) when this run buffers and stays within MAX_STEPS; False: the
    caller inserts them into the TEMP `journey_steps` table. Past the budget every step buffered so far goes
    there too and the run stops buffering: the table path writes the same files."""
    buffer = of(con)
    if buffer is None:
        return False
    if len(buffer) + steps.num_rows > MAX_STEPS:
        buffer.insert_into(con, "temp.main.journey_steps")
        stop(con)
        return False
    buffer.add(journey, ids, steps)
    return True


def start(con: Any) -> StepBuffer:
    """Buffer `con`'s cut steps (engine.journeys._insert hands them here instead of to `journey_steps`)."""
    _BUFFERS[con] = buffer = StepBuffer()
    return buffer


def of(con: Any) -> StepBuffer | None:
    """`con`'s buffer, if its steps are being buffered."""
    try:
        return _BUFFERS.get(con)
    except TypeError:
        return None


def stop(con: Any) -> StepBuffer | None:
    """End buffering on `con`; its buffer, if any (what it holds is still to be written)."""
    try:
        return _BUFFERS.pop(con, None)
    except TypeError:
        return None
