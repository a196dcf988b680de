"""The floor under `journeygraph run`: what reading the file and storing the contract tables cost alone.

Why: #2 asks for the engine stage within 3x of a bare DuckDB transition count
(`bench_engine.py`'s baseline). Before tuning further it helps to know what
reading the input and storing the tables of docs/contracts.md cost on this
machine in a straightforward design (serial parts, each at DuckDB's own
speed), with none of the engine's logic. It is a measured cost, not a proven
lower bound: a design that fuses or overlaps the parts can pay somewhat less.

* **read**: DuckDB reads the file and parses its timestamps into a temp table
  (no field mapping, validation or quarantine);
* **sort**: one sort of the keys by (actor, time, event id), fetched as Arrow
  (any sequence engine sorts once; the baseline's window does the same);
* **store**: the engine's own final `events`, `journeys` and `journey_steps`
  (taken from a real run, held as Arrow in memory) written into a fresh
  on-disk DuckDB file with CREATE TABLE AS and a CHECKPOINT, one table at a
  time. That is the cost of keeping the audit trail the design asks for
  (normalised events, journeys and their steps), whatever computes them.

The floor is the sum of the three (wall and CPU); the report compares it with
3x the baseline. Each part runs in a fresh child process.

    python benchmarks/bench_floor.py --events 1m [--format parquet|jsonl] [--workspace DIR]

The engine runs once first (timed, end to end) to make the tables the store
part copies; `--workspace` reuses a finished run's workspace instead. Results go to benchmarks/results/floor_<size>_<format>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_engine import DATA, RESULTS, ROOT, _reader, measure, run_baseline

TABLES = ("events", "journeys", "journey_steps")
READ_SQL = """CREATE TEMP TABLE staged AS
SELECT * REPLACE (CAST("timestamp" AS TIMESTAMPTZ) AS "timestamp") FROM {reader}"""
SORT_SQL = 'SELECT user_id, "timestamp", event_id FROM staged ORDER BY user_id, "timestamp", event_id'


def _timed(fn: Any) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return {"wall_seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3)}


def child_read_sort(path: Path) -> dict[str, Any]:
    """read and sort, in one process (the sort reads the table the read made)."""
    import duckdb

    con = duckdb.connect()
    read = _timed(lambda: con.execute(READ_SQL.format(reader=_reader(path))))
    sort = _timed(lambda: con.sql(SORT_SQL).to_arrow_table())
    return {"read": read, "sort": sort}


def child_store(workspace: Path, compression: str | None = None) -> dict[str, Any]:
    """CTAS + CHECKPOINT of each contract table, from Arrow copies of a finished run's tables.

    `compression` forces one DuckDB storage compression (e.g. 'uncompressed') instead of its own choice.
    """
    import duckdb

    from engine.workspace import Workspace

    source = Workspace.open(workspace, read_only=True, create=False).con  # events, journey_steps: Parquet views
    tables = {name: source.sql(f"SELECT * FROM {name}").to_arrow_table() for name in TABLES}
    source.close()
    target_dir = Path(tempfile.mkdtemp(prefix="jg-floor-"))
    try:
        con = duckdb.connect(str(target_dir / "floor.duckdb"))
        if compression:
            con.execute("SET force_compression = ?", [compression])
        out: dict[str, Any] = {"compression": compression or "duckdb default"}
        for name, table in tables.items():
            con.register("_arrow", table)
            ctas = f"CREATE TABLE {name} AS SELECT * FROM _arrow"
            out[name] = _timed(lambda sql=ctas: (con.execute(sql), con.execute("CHECKPOINT")))
            out[name]["rows"] = table.num_rows
            con.unregister("_arrow")
        con.close()
        out["file_mb"] = round((target_dir / "floor.duckdb").stat().st_size / 1e6, 1)
        return out
    finally:
        shutil.rmtree(target_dir, ignore_errors=True)


def _child(flag: str, arg: Path, *extra: str, repeat: int = 1) -> dict[str, Any]:
    """Run a part `repeat` times in fresh children; keep each timed piece's fastest run (as the baseline keeps its best)."""
    best: dict[str, Any] = {}
    for _ in range(max(repeat, 1)):
        res = measure([sys.executable, __file__, flag, str(arg), *extra], ROOT)
        if res["rc"] != 0:
            raise SystemExit(f"{flag} failed:\n{res['stderr']}")
        out = json.loads(res["stdout"].strip().splitlines()[-1])
        out["peak_rss_mb"] = round(res["maxrss_kb"] / 1024, 1)
        for key, value in out.items():
            faster = isinstance(value, dict) and "wall_seconds" in value and (
                key not in best or value["wall_seconds"] < best[key]["wall_seconds"])
            if faster or key not in best:
                best[key] = value
    best["runs"] = max(repeat, 1)
    return best


def _engine_workspace(path: Path) -> tuple[Path, dict[str, float]]:
    """One timed `journeygraph run` into a fresh workspace, whose tables the store part then copies."""
    workspace = Path(tempfile.mkdtemp(prefix="jg-floor-ws-"))
    exe = shutil.which("journeygraph") or "journeygraph"
    res = measure([exe, "run", str(path), "-c", str(DATA / "bench.yaml"), "-w", str(workspace), "--format", "json"], ROOT)
    if res["rc"] != 0:
        raise SystemExit(f"journeygraph run failed:\n{res['stderr'][-2000:]}")
    return workspace, {"wall_seconds": round(res["wall"], 3), "peak_rss_mb": round(res["maxrss_kb"] / 1024, 1)}


def floor(read_sort: dict[str, Any], store: dict[str, Any]) -> dict[str, float]:
    parts = [read_sort["read"], read_sort["sort"], *(store[name] for name in TABLES)]
    return {"wall_seconds": round(sum(p["wall_seconds"] for p in parts), 3),
            "cpu_seconds": round(sum(p["cpu_seconds"] for p in parts), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1m", help="stream label written by generate_streams.py (100k, 1m, 10m)")
    parser.add_argument("--format", default="parquet", choices=["parquet", "jsonl"])
    parser.add_argument("--workspace", type=Path, help="a finished run's workspace on the same stream (else one run first)")
    parser.add_argument("--repeat", type=int, default=3, help="baseline runs (best kept)")
    parser.add_argument("--part-repeat", type=int, default=1, help="runs of each floor part (fastest kept, like the baseline)")
    parser.add_argument("--compression", default=None,
                        help="force one DuckDB storage compression for the store part (e.g. uncompressed)")
    parser.add_argument("--child-read-sort", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-store", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_read_sort:
        print(json.dumps(child_read_sort(args.child_read_sort)))
        return 0
    if args.child_store:
        print(json.dumps(child_store(args.child_store, args.compression)))
        return 0
    path = DATA / f"events_{args.events}.{args.format}"
    if not path.exists():
        raise SystemExit(f"{path} not found; write it with: python benchmarks/generate_streams.py --events {args.events}")
    workspace, engine = (args.workspace, None) if args.workspace else _engine_workspace(path)
    try:
        base = run_baseline(path, args.repeat)
        read_sort = _child("--child-read-sort", path, repeat=args.part_repeat)
        store = _child("--child-store", workspace, *(["--compression", args.compression] if args.compression else []),
                       repeat=args.part_repeat)
    finally:
        if args.workspace is None:
            shutil.rmtree(workspace, ignore_errors=True)
    total = floor(read_sort, store)
    budget = round(3 * base["wall_seconds"], 3)
    result = {"stream": args.events, "format": args.format, "events": base["counted_events"],
              "baseline_wall_seconds": base["wall_seconds"], "budget_3x_seconds": budget,
              "read": read_sort["read"], "sort": read_sort["sort"], "store": store, "floor": total,
              "floor_share_of_budget": round(total["wall_seconds"] / budget, 3), "engine_run": engine,
              "load_average_1m": round(os.getloadavg()[0], 2),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    print(f"{args.events} {args.format} ({result['events']:,} events): baseline {base['wall_seconds']:.2f} s, "
          f"3x budget {budget:.2f} s")
    for name, part in [("read", result["read"]), ("sort", result["sort"]), *((n, store[n]) for n in TABLES)]:
        print(f"  {name:14s} {part['wall_seconds']:7.2f} s wall {part['cpu_seconds']:7.2f} CPU-s")
    print(f"  floor          {total['wall_seconds']:7.2f} s wall {total['cpu_seconds']:7.2f} CPU-s"
          f"  = {result['floor_share_of_budget']:.0%} of the 3x budget, before any of the engine's logic")
    if engine:
        print(f"  journeygraph run (whole pipeline, same file) {engine['wall_seconds']:.2f} s wall, "
              f"{result['events'] / engine['wall_seconds']:,.0f} events/s, peak {engine['peak_rss_mb']:.0f} MB")
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = f"_{args.compression}" if args.compression else ""
    out = RESULTS / f"floor_{args.events}_{args.format}{suffix}.json"
    out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"  results → {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
