"""Write many Parquet layer files from one sorted stream (engine.silver's write side).

Why one stream: writing each partition with its own `COPY (… WHERE day = …)` scanned the whole
working table once per partition (69 day files: 69 scans; at 10 M events the table no longer fits
the memory limit, so each scan read the spilled table back from disk). Here DuckDB sorts the rows
once by (partition, then the file's own order) and streams them; the partition sizes, counted
beforehand, cut the stream into files, written by pyarrow as row groups of a fixed size (so a
file's bytes depend only on its rows, never on how the stream was batched). Each file is named by
the SHA-256 of its bytes, hashed while it is written to a memory buffer (not read back from disk).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ontology.errors import EngineError

ROW_GROUP = 122_880  # rows per Parquet row group (DuckDB's own default)
BATCH_ROWS = 131_072
_COMPRESSION = "zstd"
# Columns with few distinct values get dictionary pages; ids and names that are mostly distinct do not (a dictionary
# on every column cost 2.4x the CPU and gave a larger file on the 1 M-event stream)
DICTIONARY = frozenset({"tenant_id", "event_name", "platform", "user_agent", "properties", "state_raw", "state_semantic",
                        "state_lifecycle", "journey", "state"})


@dataclass(frozen=True)
class Part:
    """One file to write: its folder (relative to the workspace), its row count, and a test its rows pass."""

    folder: Path
    rows: int
    check: Callable[[pa.Table], bool]  # true when a slice of the stream belongs to this part


def write_parts(reader: pa.RecordBatchReader, parts: list[Part], root: Path, tmp: Path,
                drop: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Write the stream `reader` (sorted so each part's rows are consecutive, parts in order) as one file per part.

    `drop`: columns of the stream used only to sort it; `tmp`: a scratch folder (the caller removes it).
    Returns (relative path, sha256) per part. A file whose name already exists is kept (same bytes).
    """
    out: list[tuple[str, str]] = []
    slices = _slices(reader, [p.rows for p in parts], drop)
    for index, part in enumerate(parts):
        writer = _FileWriter()
        while writer.rows < part.rows:
            piece_index, piece = next(slices, (None, None))
            if piece is None or piece_index != index or not part.check(piece):
                raise EngineError(f"the layer stream does not match part {index} ({part.folder}); this is a bug, please report it")
            writer.add(piece)
        out.append(_store(writer.close(), part.folder, root, tmp))
    if next(slices, None) is not None:
        raise EngineError("the layer stream holds more rows than its parts; this is a bug, please report it")
    return out


def _slices(reader: pa.RecordBatchReader, counts: list[int], drop: tuple[str, ...]) -> Iterator[tuple[int, pa.Table]]:
    """(part index, slice) along the stream, cut at the part sizes `counts` (past them: index len(counts))."""
    index, left = 0, counts[0] if counts else 0
    for batch in reader:
        table = pa.Table.from_batches([batch]).drop_columns(list(drop))
        start = 0
        while start < table.num_rows:
            take = min(left, table.num_rows - start) if index < len(counts) else table.num_rows - start
            yield index, table.slice(start, take)
            start += take
            left -= take
            if not left and index < len(counts):
                index += 1
                left = counts[index] if index < len(counts) else 0


class _FileWriter:
    """Parquet bytes in memory, written in row groups of exactly ROW_GROUP rows (the last one shorter)."""

    def __init__(self) -> None:
        self.sink = pa.BufferOutputStream()
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[pa.Table] = []
        self.buffered = 0
        self.rows = 0

    def add(self, piece: pa.Table) -> None:
        self.pending.append(piece)
        self.buffered += piece.num_rows
        self.rows += piece.num_rows
        while self.buffered >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.sink, table.schema, compression=_COMPRESSION,
                                           use_dictionary=[c for c in table.schema.names if c in DICTIONARY])
        self.writer.write_table(table.slice(0, n), row_group_size=ROW_GROUP)
        rest = table.slice(n)
        self.pending, self.buffered = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> pa.Buffer:
        if self.buffered:
            self._flush(self.buffered)
        assert self.writer is not None  # a part has at least one row
        self.writer.close()
        return self.sink.getvalue()


def _store(data: pa.Buffer, folder: Path, root: Path, tmp: Path) -> tuple[str, str]:
    """Store Parquet bytes under `<folder>/<sha256>.parquet` (kept if present); written in `tmp`, then renamed."""
    sha = hashlib.sha256(memoryview(data)).hexdigest()
    rel = folder / f"{sha}.parquet"
    target = root / rel
    if not target.exists():
        tmp.mkdir(parents=True, exist_ok=True)
        scratch = tmp / f"{uuid.uuid4().hex}.parquet"
        with open(scratch, "wb") as handle:
            handle.write(memoryview(data))
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(scratch, target)
    return rel.as_posix(), sha


def first_last_match(columns: dict[str, Callable[[Any], bool]]) -> Callable[[pa.Table], bool]:
    """A `Part.check`: the slice's first and last rows satisfy every column test (the stream is sorted, so all rows do)."""
    def check(piece: pa.Table) -> bool:
        if not piece.num_rows:
            return True
        ends = (0, piece.num_rows - 1)
        return all(test(piece.column(name)[i].as_py()) for name, test in columns.items() for i in ends)
    return check
