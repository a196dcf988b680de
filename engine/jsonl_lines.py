"""A JSONL file's non-blank lines with their 1-based numbers, as Arrow tables, straight from its bytes.

Why not DuckDB's ``read_text`` + ``string_split``: that reads the whole file
into one string (10 M lines ran out of memory) and unnests it on one thread.
Here the file is read in blocks of `BLOCK_BYTES` cut after a newline, numpy
finds the newlines, and each line is a zero-copy Arrow string over the block,
so line numbers are exact, memory is bounded and DuckDB can stage each block
on every thread (batches of `BATCH_ROWS`). Blank ('' or CR-only) lines are not
rows of their own: they ride at the end of the line before them, where JSON
sees whitespace and the quarantine text trims them.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

BLOCK_BYTES = 128 << 20  # each block is one INSERT; 256 MB was no faster and peaked higher on 10 M lines
BATCH_ROWS = 32_768  # rows per Arrow batch: DuckDB's unit of parallel work


def line_tables(path: str) -> Iterator[pa.Table]:
    """The non-blank lines of a file with their 1-based numbers, as Arrow tables of about BLOCK_BYTES.

    A block is cut after its last newline and the next read starts there (no copy of the remainder), so
    line numbers stay exact and only one block is in memory; a line longer than a block doubles the read.
    """
    first, pos, size = 1, 0, BLOCK_BYTES
    with open(path, "rb") as handle:
        while data := handle.read(size):
            cut = data.rfind(b"\n") + 1 if len(data) == size else len(data)  # a short read ends the file
            if not cut:
                size *= 2
                handle.seek(pos)
                continue
            table, newlines = lines_table(memoryview(data)[:cut], first)
            if table.num_rows:
                yield table
            first, pos, size = first + newlines, pos + cut, BLOCK_BYTES
            handle.seek(pos)


def lines_table(buf: memoryview, first: int) -> tuple[pa.Table, int]:
    """(line, raw) of the non-blank lines in `buf`, zero-copy over its bytes, and its count of newlines.

    A raw value runs from its line's start to the next kept line's start: it carries its newline and any
    blank ('' or CR-only) lines after it, whitespace to JSON and trimmed from quarantined text (`tail`).
    Raises pyarrow.ArrowInvalid if `buf` is not UTF-8 (a newline byte is never inside a character).
    """
    whole = pa.py_buffer(buf)
    pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(buf)])), whole).validate(full=True)
    data = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate(([0], newlines + 1))
    length = np.append(newlines, data.size) - starts
    keep = length > 1
    single = np.flatnonzero(length == 1)
    keep[single] = data[starts[single]] != 13
    lines = np.flatnonzero(keep) + first
    raw = pa.LargeStringArray.from_buffers(len(lines), pa.py_buffer(np.append(starts[keep], data.size)), whole)
    table = pa.table({"line": lines, "raw": raw})
    return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema), len(newlines)
