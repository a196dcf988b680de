"""A JSONL file's non-blank lines with their 1-based numbers, as Arrow tables, straight from its bytes.

Why not DuckDB's ``read_text`` + ``string_split``: that reads the whole file
into one string (10 M lines ran out of memory) and unnests it on one thread.
Here the file is read in blocks of `BLOCK_BYTES` cut after a newline, numpy
finds the newlines, and each line is a zero-copy Arrow string over the block,
so line numbers are exact, memory is bounded and DuckDB can stage each block
on every thread (batches of `BATCH_ROWS`). Blank ('' or CR-only) lines are not
rows of their own: they ride at the end of the line before them, where JSON
sees whitespace and the quarantine text trims them.

A UTF-8 byte-order mark at the start of the file is not part of the first
line. A line that is not valid UTF-8 is left out of the table and handed to
the caller's `bad` list (its number and its text with U+FFFD for the bad
bytes), to be quarantined as bad_encoding: one bad byte costs its line only.
Only lines holding a non-ASCII byte are decoded to find it, and only in a
block that fails the whole-block check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

BLOCK_BYTES = 128 << 20  # each block is one INSERT; 256 MB was no faster and peaked higher on 10 M lines
BATCH_ROWS = 32_768  # rows per Arrow batch: DuckDB's unit of parallel work
BOM = b"\xef\xbb\xbf"


def line_tables(path: str, bad: list[tuple[int, str]] | None = None) -> Iterator[pa.Table]:
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
            skip = len(BOM) if pos == 0 and data.startswith(BOM) else 0
            table, newlines = lines_table(memoryview(data)[:cut], first, skip, bad)
            if table.num_rows:
                yield table
            first, pos, size = first + newlines, pos + cut, BLOCK_BYTES
            handle.seek(pos)


def lines_table(buf: memoryview, first: int, skip: int = 0,
                bad: list[tuple[int, str]] | None = None) -> tuple[pa.Table, int]:
    """(line, raw) of the non-blank lines in `buf` from byte `skip`, zero-copy over its bytes, and its count of newlines.

    A raw value runs from its line's start to the next kept line's start: it carries its newline and any
    blank ('' or CR-only) lines after it, whitespace to JSON and trimmed from quarantined text (`tail`).
    Lines that are not UTF-8 are left out and appended to `bad` (a newline byte is never inside a
    character); without a `bad` list they raise pyarrow.ArrowInvalid.
    """
    whole = pa.py_buffer(buf)
    data = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.concatenate(([skip], newlines + 1))
    ends = np.append(newlines, data.size)
    length = ends - starts
    keep = length > 1
    single = np.flatnonzero(length == 1)
    keep[single] = data[starts[single]] != 13
    try:
        pa.LargeStringArray.from_buffers(1, pa.py_buffer(np.array([0, len(buf)])), whole).validate(full=True)
    except pa.ArrowInvalid:
        if bad is None:
            raise
        whole = _drop_undecodable(buf, data, starts, ends, keep, first, bad)
    lines = np.flatnonzero(keep) + first
    raw = pa.LargeStringArray.from_buffers(len(lines), pa.py_buffer(np.append(starts[keep], data.size)), whole)
    table = pa.table({"line": lines, "raw": raw})
    return pa.Table.from_batches(table.to_batches(max_chunksize=BATCH_ROWS), schema=table.schema), len(newlines)


def _drop_undecodable(buf: memoryview, data: np.ndarray, starts: np.ndarray, ends: np.ndarray, keep: np.ndarray,
                      first: int, bad: list[tuple[int, str]]) -> pa.Buffer:
    """Unkeep the lines that are not UTF-8, record them in `bad`, and return a copy of `buf` with them blanked.

    Only lines holding a non-ASCII byte are decoded. A bad line's bytes become newlines in the copy: the
    kept line before it runs up to the next kept line, and newlines are whitespace to JSON.
    """
    copy = bytearray(buf)
    high = np.flatnonzero(data[starts[0]:] >= 0x80) + starts[0]  # a skipped byte-order mark is no line's
    candidates = np.unique(np.searchsorted(starts, high, side="right") - 1)
    for i in candidates[keep[candidates]]:
        text: Any = bytes(buf[starts[i]:ends[i]])
        try:
            text.decode("utf-8")
        except UnicodeDecodeError:
            keep[i] = False
            copy[starts[i]:ends[i]] = b"\n" * (ends[i] - starts[i])
            bad.append((int(i) + first, text.decode("utf-8", "replace").rstrip("\r")))
    return pa.py_buffer(copy)
