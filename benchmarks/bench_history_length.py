"""A daily increment against a full recompute as the history grows, stage by stage (issue 17).

    python benchmarks/bench_history_length.py [--histories 30 60 90] [--rounds 2] [--events 1000000]

Why: the daily target (≤ 10 % of a full recompute) depends on how many journeys are still inside their
window, which is the same ~30 days of journeys whatever the history's length, while a full recompute
grows with it (docs/design/incremental-estimates.md). The bench stream (generate_streams.simulate) at the
rate of `--events` per 56 days, its signups spread over max(histories) + 2 days, one Parquet file per UTC
day. Per history length N: a full run over the first N days; then, on fresh copies of it and alternated,
the increment with day N+1 and the full recompute over the N+1 days (JOURNEYGRAPH_FULL_RECOMPUTE=1, as
bench_incremental does), each in a process of its own that reports the CPU seconds of every pipeline
stage; the two outputs are compared every round. Prints the median CPU-s per stage and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_incremental  # noqa: E402
import generate_streams  # noqa: E402

STAGES = ("ingest", "normalise", "journeys", "snapshots", "detectors", "facts", "narrator", "total")


def daily_files(folder: Path, events_per_56_days: int, days: int, seed: int) -> list[Path]:
    """The stream with signups over `days` at the bench's daily rate, one Parquet file per UTC day."""
    table = generate_streams.simulate(int(events_per_56_days * days / generate_streams.DAYS), seed, days=days)
    folder.mkdir(parents=True)
    stream = folder / "stream.parquet"
    pq.write_table(table, stream, compression="zstd")
    con = duckdb.connect()
    stamps = con.execute(f"SELECT DISTINCT left(timestamp, 10) FROM read_parquet('{stream}') ORDER BY 1").fetchall()
    for (day,) in stamps:
        con.execute(f"COPY (SELECT * FROM read_parquet('{stream}') WHERE left(timestamp, 10) = '{day}') "
                    f"TO '{folder / f'day_{day}.parquet'}' (FORMAT parquet)")
    con.close()
    stream.unlink()
    return sorted(folder.glob("day_*.parquet"))


def timed_run(ws: Path, cfg: Path, full: bool) -> dict[str, float]:
    """One pipeline run in a child process: CPU seconds per stage and in total."""
    env = dict(os.environ, JOURNEYGRAPH_NO_PROGRESS="1", PYTHONPATH=str(ROOT),
               JOURNEYGRAPH_FULL_RECOMPUTE="1" if full else "0")
    proc = subprocess.run([sys.executable, __file__, "--child", str(cfg), str(ws)], capture_output=True, text=True,
                          env=env, cwd=ROOT, check=True)
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def child(cfg: str, ws: str) -> None:
    """Run the pipeline, timing each stage from the end of the one before (engine.app.pipeline._step)."""
    from engine.app import pipeline

    cpu: dict[str, float] = {}
    real = pipeline._step
    mark = [time.process_time()]

    def step(bar: object, name: str) -> None:
        real(bar, name)
        cpu[name] = round(time.process_time() - mark[0], 3)
        mark[0] = time.process_time()

    pipeline._step = step  # type: ignore[assignment]
    started = time.process_time()
    pipeline.run(None, cfg, ws, quiet=True)
    cpu["total"] = round(time.process_time() - started, 3)
    print(json.dumps(cpu))


def history(n: int, files: list[Path], work: Path, rounds: int) -> dict[str, object]:
    """The history run over n days, then `rounds` alternated (increment, full) pairs with day n + 1."""
    src, ws, cfg = work / "src", work / "history", work / "bench.yaml"
    src.mkdir(parents=True)
    for path in files[:n]:
        shutil.copy(path, src / path.name)
    cfg.write_text(f"source: {src}/*.parquet\n" + generate_streams.CONFIG)
    timed_run(ws, cfg, full=True)
    shutil.copy(files[n], src / files[n].name)
    runs: dict[str, list[dict[str, float]]] = {"daily": [], "full": []}
    same = True
    for _ in range(rounds):
        for mode in runs:
            target = work / mode
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(ws, target)
            runs[mode].append(timed_run(target, cfg, full=mode == "full"))
        same = same and bench_incremental.outputs(work / "daily") == bench_incremental.outputs(work / "full")
    open_now, journeys = bench_incremental.open_journeys(work / "daily")
    median = {mode: {s: statistics.median(r.get(s, 0.0) for r in rs) for s in STAGES} for mode, rs in runs.items()}
    return {"history_days": n, "journeys": journeys, "open": open_now, "identical_outputs": same, "cpu_s": median}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--histories", nargs="+", type=int, default=[30, 60, 90], help="history lengths in days")
    parser.add_argument("--rounds", type=int, default=2, help="alternated (increment, full) pairs per history")
    parser.add_argument("--events", type=int, default=1_000_000, help="the daily rate, as events per 56 days")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0
    work = Path(tempfile.mkdtemp(prefix="history_length_"))  # not benchmarks/data: nothing is kept
    try:
        files = daily_files(work / "daily", args.events, max(args.histories) + 2, args.seed)
        for n in args.histories:
            r = history(n, files, work / f"h{n}", args.rounds)
            cpu = r["cpu_s"]
            assert isinstance(cpu, dict)
            print(f"history {n} d: {r['journeys']} journeys, {r['open']} open, identical outputs {r['identical_outputs']}")
            for s in STAGES:
                d, f = cpu["daily"][s], cpu["full"][s]
                print(f"  {s:10} daily {d:7.2f}  full {f:7.2f}  ratio {d / f if f else float('nan'):5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
