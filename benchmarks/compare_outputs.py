"""Compare the per-event outputs of two workspaces, to show a speed change changed nothing.

    python benchmarks/compare_outputs.py [--ignore-file-bytes] WS_BEFORE WS_AFTER

For each table below, the SHA-256 of its rows dumped in `ORDER BY ALL` order (and its row count); for the
Parquet layers also the manifest's file names (content hashes: identical bytes give identical names).
`--ignore-file-bytes` leaves the files' hashes out (rows, row counts and content digests stay): for a change
that writes the same rows into different bytes on purpose (an encoding, a pyarrow upgrade).
Exit 0 when every line is identical, 1 otherwise (the differing lines are printed).
"""

from __future__ import annotations

import hashlib
import sys

from engine.workspace import Workspace

TABLES = ("events", "journeys", "journey_progress", "journey_steps", "journey_cuts", "snapshots", "feed", "findings")
MANIFEST = "SELECT layer, tenant_id, part, rows, digest, input_xor{bytes} FROM parquet_files"


def fingerprint(path: str, file_bytes: bool = True) -> dict[str, str]:
    """table -> 'rows sha256' of its ordered dump (a table the workspace lacks -> 'missing'); `file_bytes` False:
    the Parquet files' own hashes left out of the manifest's."""
    con = Workspace.open(path, read_only=True, create=False).con
    manifest = MANIFEST.format(bytes=", sha256" if file_bytes else "")
    out = {}
    for name, sql in [*((t, f"SELECT * FROM {t}") for t in TABLES), ("parquet_files", manifest)]:
        try:
            cur = con.execute(f"{sql} ORDER BY ALL")
        except Exception as err:  # noqa: BLE001 - a table one side lacks is reported, not fatal
            out[name] = f"missing ({type(err).__name__})"
            continue
        digest, n = hashlib.sha256(), 0
        while rows := cur.fetchmany(100_000):
            for row in rows:
                digest.update(repr(row).encode())
            n += len(rows)
        out[name] = f"{n} {digest.hexdigest()}"
    return out


def main(argv: list[str]) -> int:
    file_bytes = "--ignore-file-bytes" not in argv
    paths = [a for a in argv if a != "--ignore-file-bytes"]
    before, after = fingerprint(paths[0], file_bytes), fingerprint(paths[1], file_bytes)
    same = True
    for name in before:
        mark = "same" if before[name] == after[name] else "DIFFERENT"
        same &= mark == "same"
        print(f"{mark:9} {name:16} {before[name]}" + ("" if mark == "same" else f"  vs  {after[name]}"))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
