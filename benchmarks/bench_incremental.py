"""Incremental run against a full recompute on the bench stream split into daily files (issue 17 item 2).

    python benchmarks/bench_incremental.py [--events 1m] [--scenarios daily weeks]

The stream of benchmarks/generate_streams.py (eight weeks from 2026-01-05, plus the tail of the
last journeys) is split into one Parquet file per UTC day. Per scenario a workspace is built over
the history files, copied twice, the new files are added, and the same `journeygraph run` (a separate
process, as a user runs it) is timed on one copy as an incremental run and on the other with
JOURNEYGRAPH_FULL_RECOMPUTE=1; both must give identical snapshots, feed, insights and derived tables.
Each pair is repeated (--repeats, alternating incremental and full on fresh copies) and the best
time of each kept, so a burst of load on the shared machine does not decide the ratio.

* daily: one new day (day 31) on 30 days of history; target: incremental <= 10 % of the full recompute;
* weeks: weeks 7-8 (and the tail) on weeks 1-6; target <= 40 %;
* daily_late: one new day (day 56, the stream's last full day) on 55 days of history: the same target as
  daily, with fewer journeys still inside their window.

Beside each ratio: how many journeys are still open (inside their 30-day window) after the run. Every
estimate of an open journey changes with the data end, so an incremental run recomputes them all; the
share open is the floor the reuse works above.

The 1-minute load average is recorded beside every timing (the machine is shared). Results go to
benchmarks/results/incremental_<size>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
SCENARIOS = {"daily": (30, 1), "weeks": (42, None), "daily_late": (55, 1)}  # (history days, added days; None = the rest)
TARGETS = {"daily": 0.10, "weeks": 0.40, "daily_late": 0.10}


def daily_files(size: str) -> list[Path]:
    """The stream as one Parquet file per UTC day, written once (sorted names are chronological)."""
    stream = DATA / f"events_{size}.parquet"
    if not stream.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_streams.py"), "--events", size,
                        "--formats", "parquet"], check=True)
    folder = DATA / f"daily_{size}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        con = duckdb.connect()
        days = [r[0] for r in con.execute(f"SELECT DISTINCT left(timestamp, 10) FROM read_parquet('{stream}') "
                                          "ORDER BY 1").fetchall()]
        for day in days:
            con.execute(f"COPY (SELECT * FROM read_parquet('{stream}') WHERE left(timestamp, 10) = '{day}') "
                        f"TO '{folder / f'day_{day}.parquet'}' (FORMAT parquet)")
        con.close()
    return sorted(folder.glob("day_*.parquet"))


def run(ws: Path, cfg: Path, full: bool) -> dict[str, Any]:
    env = dict(os.environ, JOURNEYGRAPH_NO_PROGRESS="1", PYTHONPATH=str(ROOT))
    # as installed: a user's Python caches the bytecode (this sandbox sets PYTHONDONTWRITEBYTECODE, which made every
    # run compile journeygraph's modules again, ~0.3 CPU-s; the history run warms the cache for the measured runs)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["JOURNEYGRAPH_FULL_RECOMPUTE"] = "1" if full else "0"
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine.app.cli", "run", "-c", str(cfg), "-w", str(ws), "--format",
                           "json"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    wall = time.perf_counter() - started
    summary = json.loads(proc.stdout)
    return {"wall_s": round(wall, 2), "run_s": summary["seconds"], "load_1min_before": round(load, 2),
            "load_1min_after": round(os.getloadavg()[0], 2), "events_read_this_run": summary.get("events_read_this_run"),
            "accepted": summary["accepted"], "incremental": summary.get("incremental")}


def outputs(ws: Path) -> str:
    """Snapshots, feed, insights and the derived tables in a fixed order (compared between the two copies)."""
    sys.path.insert(0, str(ROOT))
    from engine.workspace import Workspace

    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        parts = [con.execute(sql).fetchall() for sql in (
            "SELECT snapshot_id, payload::VARCHAR FROM snapshots ORDER BY 1",
            "SELECT rank, item::VARCHAR FROM feed ORDER BY 1",
            "SELECT insight_id, payload::VARCHAR FROM insights ORDER BY 1",
            "SELECT count(*), sum(hash(columns(*))::HUGEINT) FROM events",
            "SELECT count(*), sum(hash(columns(*))::HUGEINT) FROM journeys",
            "SELECT count(*), sum(hash(columns(*))::HUGEINT) FROM journey_steps")]
    finally:
        con.close()
    return json.dumps(parts, default=str)


def scenario(name: str, files: list[Path], work: Path, repeats: int) -> dict[str, Any]:
    """History run once; then `repeats` times, alternating, an incremental and a full run on fresh copies of it."""
    history, added = SCENARIOS[name]
    new = files[history:history + added] if added else files[history:]
    src, ws = work / f"{name}_src", work / f"{name}_history"
    shutil.rmtree(work, ignore_errors=True)
    src.mkdir(parents=True)
    for path in files[:history]:
        shutil.copy(path, src / path.name)
    cfg = work / "bench.yaml"
    cfg.write_text(f"source: {src}/*.parquet\n" + (DATA / "bench.yaml").read_text())
    built = run(ws, cfg, full=True)
    for path in new:
        shutil.copy(path, src / path.name)
    runs: dict[str, list[dict[str, Any]]] = {"incremental": [], "full": []}
    same, open_now = True, (0, 0)
    for i in range(repeats):
        for mode in ("incremental", "full"):
            target = work / f"{mode}_{i}"
            shutil.copytree(ws, target)
            runs[mode].append(run(target, cfg, full=mode == "full"))
        same = same and outputs(work / f"incremental_{i}") == outputs(work / f"full_{i}")
        open_now = open_journeys(work / f"incremental_{i}")
        for mode in runs:
            shutil.rmtree(work / f"{mode}_{i}")
    best = {mode: min(r["wall_s"] for r in rs) for mode, rs in runs.items()}
    best_run = {mode: min(r["run_s"] for r in rs) for mode, rs in runs.items()}
    return {"history_files": history, "added_files": len(new), "history_run": built, "runs": runs,
            "best_wall_s": best, "best_run_s": best_run,
            "ratio_wall": round(best["incremental"] / best["full"], 3),
            "ratio_run": round(best_run["incremental"] / best_run["full"], 3),
            "target": TARGETS[name], "identical_outputs": same,
            "journeys_open": {"open": open_now[0], "all": open_now[1], "share": round(open_now[0] / max(open_now[1], 1), 3)}}


def open_journeys(ws: Path) -> tuple[int, int]:
    """(journeys still inside their window, all journeys) of a workspace."""
    sys.path.insert(0, str(ROOT))
    from engine.workspace import Workspace

    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        row = con.execute("SELECT count(*) FILTER (WHERE censored), count(*) FROM journeys").fetchall()[0]
    finally:
        con.close()
    return int(row[0]), int(row[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1m", choices=["100k", "1m", "10m"])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    parser.add_argument("--repeats", type=int, default=2, help="incremental/full pairs per scenario (best is kept)")
    args = parser.parse_args(argv)
    files = daily_files(args.events)
    result: dict[str, Any] = {"events": args.events, "cpus": os.cpu_count(), "scenarios": {}}
    # a folder of this run's own: two benchmarks at once (worktrees share benchmarks/data) must not share one
    work = Path(tempfile.mkdtemp(prefix=f"incremental_work_{args.events}_", dir=DATA))
    try:
        for name in args.scenarios:
            result["scenarios"][name] = scenario(name, files, work / name, args.repeats)
            print(name, json.dumps({k: v for k, v in result["scenarios"][name].items()
                                    if k.startswith(("ratio", "identical", "journeys_open"))}))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"incremental_{args.events}.json"
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
