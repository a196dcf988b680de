"""`journeygraph run --engine duckdb` against `--engine spark` on one generated file: wall time and peak memory.

Each engine runs the whole pipeline once in a fresh child process (`python -m engine.app.cli run`),
Spark with its default local[2] session (JOURNEYGRAPH_SPARK_DRIVER_MEMORY to change the driver heap).
Peak memory is of the whole process tree (the CLI, Spark's JVM and its Python workers), summed from
/proc every 0.2 s: a short spike between samples can be missed. The 1-minute load average is noted
before and after each run, because the machine is shared. The two runs' `snapshot --format json`
outputs are byte-compared too.

    python benchmarks/bench_spark.py --events 1m [--engines duckdb spark]

Input: benchmarks/data/events_<size>.parquet from generate_streams.py (written first when missing).
Result: benchmarks/results/spark_<size>.json.
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

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "data"
RESULTS = ROOT / "benchmarks" / "results"
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _tree(pid: int) -> list[int]:
    """pid and all its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def _rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_KB
        except (OSError, IndexError, ValueError):
            continue
    return total


def measure(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run cmd; wall time, peak summed RSS of its process tree, exit code and output."""
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _rss_kb(_tree(proc.pid)))
        time.sleep(0.2)
    out, err = proc.communicate()
    return {"rc": proc.returncode, "wall_seconds": round(time.perf_counter() - started, 2), "peak_tree_rss_mb": round(peak / 1024),
            "load_1m_before": round(load_before, 2), "load_1m_after": round(os.getloadavg()[0], 2),
            "stdout": out, "stderr": err[-3000:]}


def run_engine(engine: str, path: Path, workspace: Path) -> dict[str, Any]:
    env = {**os.environ, "JOURNEYGRAPH_NO_PROGRESS": "1", "PYTHONPATH": str(ROOT)}
    cli = [sys.executable, "-m", "engine.app.cli"]
    res = measure([*cli, "run", str(path), "-c", str(DATA / "bench.yaml"), "-w", str(workspace), "--engine", engine,
                   "--format", "json"], env)
    if res["rc"] != 0:
        raise SystemExit(f"{engine} run failed:\n{res['stderr']}")
    summary = json.loads(res.pop("stdout"))
    res.pop("stderr")
    snapshot = subprocess.run([*cli, "snapshot", "-w", str(workspace), "--format", "json"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True).stdout
    counts = {k: summary[k] for k in ("events_read", "accepted", "duplicates", "bots_filtered", "actors", "journeys", "censored")}
    return {**res, "engine_seconds_reported": summary["seconds"], "counts": counts, "snapshot": snapshot}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1m", choices=("100k", "1m", "10m"))
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=("duckdb", "spark"))
    args = parser.parse_args(argv)
    path = DATA / f"events_{args.events}.parquet"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_streams.py"), "--events", args.events,
                        "--formats", "parquet"], check=True)
    runs: dict[str, Any] = {}
    for engine in args.engines:
        workspace = Path(tempfile.mkdtemp(prefix=f"jg-bench-{engine}-"))
        try:
            runs[engine] = run_engine(engine, path, workspace)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        print(engine, {k: v for k, v in runs[engine].items() if k != "snapshot"}, flush=True)
    snapshots = {e: r.pop("snapshot") for e, r in runs.items()}
    result = {"input": str(path.relative_to(ROOT)), "events": args.events, "cores": os.cpu_count(),
              "spark_driver_memory": os.environ.get("JOURNEYGRAPH_SPARK_DRIVER_MEMORY", "1g"), "runs": runs,
              "snapshots_identical": len(set(snapshots.values())) == 1 if len(snapshots) > 1 else None}
    if "duckdb" in runs and "spark" in runs:
        result["spark_over_duckdb_wall"] = round(runs["spark"]["wall_seconds"] / runs["duckdb"]["wall_seconds"], 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"spark_{args.events}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}), f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
