"""The writer of the silver and gold layer files: DuckDB query results streamed as Arrow, written by pyarrow.

Why not DuckDB's COPY: a COPY runs on the connection's thread and a TEMP table is visible to no other
cursor, so the files were written one after another (about 1.5 µs a row, most of the journeys stage's
wall time at 10 M events), and its bytes depended on the table's statistics, not only on the rows.
Here the caller's thread runs the queries (a connection runs one at a time) and hands each file's rows
to a worker thread, where pyarrow's C++ writer encodes them without the GIL: the next partition's query
overlaps the previous partition's encoding.

What makes the bytes a function of the rows alone (the file names are their SHA-256): the rows are cut
into row groups of exactly ROW_GROUP rows (the last shorter), each one contiguous Arrow chunk, whatever
batches DuckDB produced; every column has a fixed Arrow type (so a fixed Parquet type: TIMESTAMP as
INT64 microseconds without time zone, JSON with the JSON logical type); the writer options below are
fixed; and each file is written by one thread start to finish, so the number of workers only changes
when a file is written. The bytes do depend on the pyarrow version (it is named in the file).
docs/contracts.md "Parquet layers".
"""

from __future__ import annotations

import queue
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 122_880
_ARROW = {"VARCHAR": pa.string(), "JSON": pa.json_(), "TIMESTAMP": pa.timestamp("us"), "BIGINT": pa.int64(),
          "INTEGER": pa.int32()}
# Dictionary encoding only where a file holds few distinct values: on the unique-ish columns (ids, times,
# counters) it was built and then thrown away. Measured on the 2 M stream's files: 1.65 -> 1.38 CPU-s for
# the day files, 1.17 -> 0.63 for the steps, and smaller files.
_DICTIONARY = ("tenant_id", "actor_id", "event_name", "platform", "user_agent", "properties", "state_raw",
               "state_semantic", "state_lifecycle", "journey", "state")
# min/max statistics for the columns the layers are filtered or joined on (they let a reader skip row groups);
# the others' cost 20 % of the writer (string comparisons on every value) for no query that uses them.
_STATISTICS = ("tenant_id", "actor_id", "event_id", "ts", "input_order", "seq", "journey", "journey_id", "step")
# DELTA_BINARY_PACKED for a layer's integer and time columns that are near their neighbours (the caller names
# them: the silver ones; LayerWriter `delta`): smaller than PLAIN + zstd, cheaper to write and to read back.
# Measured on the 10 M silver files (72 days, replayed): encode 3.46 -> 2.90 CPU-s, 179.6 -> 165.9 MB; DuckDB
# reading the four columns 0.52 -> 0.19 CPU-s, every column 1.99 -> 1.50. The steps' ts and step gained nothing.
_OPTIONS: dict[str, Any] = {"version": "2.6", "compression": "zstd", "compression_level": 1,
                            "data_page_version": "1.0", "data_page_size": 1 << 20, "write_batch_size": 1024,
                            "dictionary_pagesize_limit": 1 << 20, "store_schema": False, "write_page_index": False}
_DONE = None  # the end of a file's row groups in its queue
_ABORT = pa.table({})  # its query failed: the file is not named


class _Aborted(RuntimeError):
    pass


def arrow_schema(columns: tuple[tuple[str, str], ...]) -> pa.Schema:
    """The fixed Arrow schema of a layer's (name, DuckDB type) columns."""
    return pa.schema([pa.field(name, _ARROW[kind]) for name, kind in columns])


def row_groups(batches: Iterator[pa.RecordBatch], schema: pa.Schema, size: int = ROW_GROUP) -> Iterator[pa.Table]:
    """The rows of `batches` as tables of exactly `size` rows (the last shorter), each one contiguous chunk of
    `schema`'s types: the file then depends on the rows, not on how the producer batched them."""
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(size - count, batch.num_rows)
            held.append(batch.slice(0, take))
            count += take
            batch = batch.slice(take)
            if count == size:
                yield _one_chunk(held, schema)
                held, count = [], 0
    if held:
        yield _one_chunk(held, schema)


class Parts:
    """A stream of batches handed out as consecutive parts of known row counts (`take`), each consumed in full
    before the next is taken (LayerWriter.add_batches does): one sorted query writes several files."""

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        self._batches, self._held = iter(batches), None

    def take(self, n: int) -> Iterator[pa.RecordBatch]:
        """The next `n` rows."""
        while n:
            batch = self._held if self._held is not None else next(self._batches, None)
            self._held = None
            if batch is None:
                raise ValueError(f"the stream ended {n} rows short of its parts' counts")
            if batch.num_rows > n:
                batch, self._held = batch.slice(0, n), batch.slice(n)
            n -= batch.num_rows
            if batch.num_rows:
                yield batch

    def end(self) -> None:
        """Check that every row was taken."""
        if (self._held is not None and self._held.num_rows) or any(b.num_rows for b in self._batches):
            raise ValueError("the stream holds more rows than its parts' counts")


def _one_chunk(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches(batches).cast(schema).combine_chunks()


def encode(path: Path, schema: pa.Schema, groups: Iterator[pa.Table], delta: tuple[str, ...] = ()) -> None:
    """Write `groups` (row groups of `schema`) as one Parquet file; the `delta` columns DELTA_BINARY_PACKED."""
    names = set(schema.names)
    encodings = {c: "DELTA_BINARY_PACKED" for c in delta if c in names}
    with pq.ParquetWriter(str(path), schema, use_dictionary=[c for c in _DICTIONARY if c in names and c not in encodings],
                          write_statistics=[c for c in _STATISTICS if c in names],
                          column_encoding=encodings or None, **_OPTIONS) as writer:
        for table in groups:
            writer.write_table(table, row_group_size=ROW_GROUP)


def _drain(inbox: queue.Queue[pa.Table | None]) -> Iterator[pa.Table]:
    while (item := inbox.get()) is not _DONE:
        if item is _ABORT:
            raise _Aborted("the query of a layer file failed")
        yield item


class LayerWriter:
    """Writes query results as Parquet files: the caller's thread runs each query, `workers` threads encode
    (0: encoded on the caller's thread). `place(scratch, where)` names a finished file (on the thread that
    wrote it); `results()` gives its answers in the order the files were added. `delta`: the integer or
    time columns written DELTA_BINARY_PACKED."""

    def __init__(self, columns: tuple[tuple[str, str], ...], tmp: Path, place: Callable[[Path, Any], Any],
                 workers: int, delta: tuple[str, ...] = ()) -> None:
        self._schema = arrow_schema(columns)
        self._delta = delta
        self._tmp, self._place = tmp, place
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="jg-parquet") if workers > 0 else None
        self._files: list[Future[Any]] = []
        self._workers = workers

    def add(self, con: duckdb.DuckDBPyConnection, query: str, where: Any) -> None:
        """Write `query`'s rows (in its order) as one file, then `place` it at `where`."""
        self.add_batches(iter(con.sql(query).to_arrow_reader(ROW_GROUP)), where)

    def add_batches(self, batches: Iterator[pa.RecordBatch], where: Any) -> None:
        """Write the rows of `batches` (the layer's columns, in order) as one file, then `place` it at `where`."""
        self._tmp.mkdir(parents=True, exist_ok=True)
        scratch = self._tmp / f"{uuid.uuid4().hex}.parquet"
        groups = row_groups(batches, self._schema)
        if self._pool is None:
            done: Future[Any] = Future()
            encode(scratch, self._schema, groups, self._delta)
            done.set_result(self._place(scratch, where))
            self._files.append(done)
            return
        self._wait_for_room()
        inbox: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)  # bounds the rows held per file
        self._files.append(self._pool.submit(self._job, scratch, inbox, where))
        try:
            for table in groups:
                self._put(inbox, table)
        except BaseException:
            self._put(inbox, _ABORT)  # the job ends without naming a partial file; the query's error is raised
            raise
        self._put(inbox, _DONE)

    def _wait_for_room(self) -> None:
        """At most one file more than there are workers in flight: small files do not pile up in memory."""
        pending = [f for f in self._files if not f.done()]
        if len(pending) > self._workers:
            wait(pending[: len(pending) - self._workers])

    def _put(self, inbox: queue.Queue[pa.Table | None], item: pa.Table | None) -> None:
        """Put unless this file's job already ended (failed): it no longer takes rows."""
        while not self._files[-1].done():
            try:
                inbox.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _job(self, scratch: Path, inbox: queue.Queue[pa.Table | None], where: Any) -> Any:
        encode(scratch, self._schema, _drain(inbox), self._delta)
        return self._place(scratch, where)

    def results(self) -> list[Any]:
        """Every file's `place` answer, in order, once all are written (a writer's error is raised here)."""
        try:
            return [f.result() for f in self._files]
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the files being written; files not started are dropped (after an error)."""
        if self._pool is not None:
            for f in self._files:
                f.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
