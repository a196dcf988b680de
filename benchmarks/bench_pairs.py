"""Two revisions of `journeygraph run` on the same input, alternated: wall, CPU and peak memory per run, per
pipeline stage and per snapshot sub-stage, and whether the two give identical outputs.

    python benchmarks/bench_pairs.py BASE [NEW] [--events 10m] [--scenario full|daily] [--pairs 2]
                                     [--ignore-file-bytes]

BASE and NEW are git revisions; NEW defaults to `.`, this checkout as it is (uncommitted changes included).
A revision is exported once (`git archive`) and imported from there (PYTHONPATH), so both sides use the
packages installed here. The runs alternate BASE, NEW, BASE, NEW, … each in a fresh child process measured by
bench_engine's wrapper (wall time with interpreter start-up, peak RSS of the child):

* full: a run over events_<size>.parquet into a fresh workspace;
* daily: one new day on 30 days of history, as bench_incremental's `daily` scenario: each side's history
  workspace is built once, by that side's code, then every measured run works on a fresh copy of it.

The first pair's two workspaces are compared with compare_outputs (`--ignore-file-bytes`: the Parquet files'
own hashes left out, for a change that writes the same rows as other bytes on purpose); a difference is
reported and the exit status is 1.

Why pairs: the speed changes of issue 17 are a few per cent of a run, and one run of the same code varies by
±5 % on this shared two-core machine (and by more between machines: the same commit measured 46 s on one and
55–59 s on another). Only alternated runs of both sides on one host, at one time, show such a change.
Results are printed and written to benchmarks/results/pairs_<size>_<scenario>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_engine  # noqa: E402 - the benchmarks folder is not a package
import bench_incremental  # noqa: E402
import compare_outputs  # noqa: E402

ROOT = bench_engine.ROOT
DATA = bench_engine.DATA
HISTORY_DAYS = 30


def child(source: str | None, config: str, workspace: str, full: bool) -> dict[str, Any]:
    """One run in this process (the revision's engine comes first on PYTHONPATH): seconds and CPU seconds per
    stage (the pipeline's stage marks) and per snapshot sub-stage (engine.snapshot's debug lines)."""
    from engine.app import pipeline

    os.environ["JOURNEYGRAPH_FULL_RECOMPUTE"] = "1" if full else "0"
    out: dict[str, Any] = {"stages": {}, "snapshot": {}}

    class SubStages(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:  # "snapshot stage fetch: 0.5 s (cpu 0.4 s)"
            words = record.getMessage().replace(":", "").split()
            if words[:2] == ["snapshot", "stage"]:
                out["snapshot"][words[2]] = [float(words[3]), float(words[6])]

    logger = logging.getLogger("engine.snapshot")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(SubStages())
    mark = [time.perf_counter(), time.process_time()]
    real_step = pipeline._step

    def timed_step(bar: Any, name: str) -> None:
        out["stages"][name] = [round(time.perf_counter() - mark[0], 3), round(time.process_time() - mark[1], 3)]
        real_step(bar, name)
        mark[:] = [time.perf_counter(), time.process_time()]

    pipeline._step = timed_step
    started = time.perf_counter()
    summary = pipeline.run(source, config, workspace, quiet=True)
    out["pipeline_s"] = round(time.perf_counter() - started, 3)
    out["cpu_s"] = round(time.process_time(), 3)  # every thread of the process, DuckDB's included
    out["events_read_this_run"] = summary.get("events_read_this_run")
    return out


class Side:
    """One revision: its importable tree and, in the daily scenario, its history workspace."""

    def __init__(self, label: str, rev: str, work: Path) -> None:
        self.label, self.rev = label, rev
        if rev == ".":
            self.tree = ROOT
        else:
            self.tree = work / f"tree_{label}"
            self.tree.mkdir()
            archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(self.tree)], input=archive, check=True)
        self.commit = subprocess.run(["git", "rev-parse", "--short", "HEAD" if rev == "." else rev], cwd=ROOT,
                                     capture_output=True, text=True, check=True).stdout.strip()
        if rev == "." and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                         capture_output=True, text=True, check=True).stdout.strip():
            self.commit += "+edits"  # the checkout differs from its commit
        self.history: Path | None = None

    def run(self, source: str | None, config: Path, workspace: Path, full: bool) -> dict[str, Any]:
        cmd = [sys.executable, __file__, "--child", json.dumps([source, str(config), str(workspace), full])]
        load = os.getloadavg()[0]
        res = bench_engine.measure(cmd, ROOT, {"PYTHONPATH": str(self.tree), "JOURNEYGRAPH_NO_PROGRESS": "1"})
        if res["rc"] != 0:
            raise SystemExit(f"{self.label} ({self.rev}) failed:\n{res['stderr']}")
        inner = json.loads(res["stdout"].strip().splitlines()[-1])
        return {"wall_s": round(res["wall"], 3), "peak_mb": round(res["maxrss_kb"] / 1024), "load_1min": round(load, 2),
                **inner}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Per side the median of each figure (stages and sub-stages: [wall, cpu]); per pair NEW − BASE wall."""
    out: dict[str, Any] = {}
    for label, rs in runs.items():
        side: dict[str, Any] = {k: _median([r[k] for r in rs]) for k in ("wall_s", "cpu_s", "peak_mb", "pipeline_s")}
        for group in ("stages", "snapshot"):
            names = [n for n in rs[0][group] if all(n in r[group] for r in rs)]
            side[group] = {n: [_median([r[group][n][i] for r in rs]) for i in (0, 1)] for n in names}
        out[label] = side
    out["pair_deltas_wall_s"] = [round(n["wall_s"] - b["wall_s"], 3) for b, n in zip(runs["base"], runs["new"],
                                                                                      strict=True)]
    return out


def _print(summary: dict[str, Any], sides: dict[str, Side]) -> None:
    base, new = summary["base"], summary["new"]
    print(f"{'':22}{'base ' + sides['base'].commit:>18}{'new ' + sides['new'].commit:>18}")
    for key in ("wall_s", "cpu_s", "peak_mb"):
        print(f"{key:22}{base[key]:>18}{new[key]:>18}")
    for group in ("stages", "snapshot"):
        for name in base[group]:
            if name in new[group] and max(base[group][name][0], new[group][name][0]) >= 0.05:
                b, n = base[group][name], new[group][name]
                print(f"{group[:5] + ' ' + name:22}{f'{b[0]:.2f} ({b[1]:.2f})':>18}{f'{n[0]:.2f} ({n[1]:.2f})':>18}")
    print(f"pairs, new - base wall: {summary['pair_deltas_wall_s']}   (stages: wall (cpu) s, medians)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", nargs="?", help="git revision measured as BASE")
    parser.add_argument("new", nargs="?", default=".", help="git revision measured as NEW (default: this checkout)")
    parser.add_argument("--events", default="10m", help="stream label written by generate_streams.py")
    parser.add_argument("--scenario", default="full", choices=("full", "daily"))
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--ignore-file-bytes", action="store_true", help="compare outputs without the files' hashes")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        source, config, workspace, full = json.loads(args.child)
        print(json.dumps(child(source, config, workspace, full)))
        return 0
    if not args.base:
        parser.error("a BASE revision is needed")
    work = Path(tempfile.mkdtemp(prefix=f"pairs_{args.events}_", dir=DATA))
    try:
        sides = {"base": Side("base", args.base, work), "new": Side("new", args.new, work)}
        source, config = _input(args, work, sides)
        runs: dict[str, list[dict[str, Any]]] = {"base": [], "new": []}
        same = None
        for i in range(args.pairs):
            for label, side in sides.items():
                ws = work / f"ws_{label}_{i}"
                if side.history is not None:
                    shutil.copytree(side.history, ws)
                runs[label].append(side.run(source, config, ws, full=False))
                print(f"pair {i + 1} {label}: {runs[label][-1]['wall_s']} s wall, {runs[label][-1]['peak_mb']} MB",
                      flush=True)
            if i == 0:
                before = compare_outputs.fingerprint(str(work / "ws_base_0"), not args.ignore_file_bytes)
                after = compare_outputs.fingerprint(str(work / "ws_new_0"), not args.ignore_file_bytes)
                same = before == after
                for name in before:
                    if before[name] != after[name]:
                        print(f"DIFFERENT {name}: {before[name]} vs {after[name]}")
            for label in sides:
                shutil.rmtree(work / f"ws_{label}_{i}", ignore_errors=True)
        summary = summarise(runs)
        _print(summary, sides)
        print("outputs identical" if same else "OUTPUTS DIFFER")
        result = {"events": args.events, "scenario": args.scenario, "cpus": os.cpu_count(),
                  "revisions": {k: {"rev": s.rev, "commit": s.commit} for k, s in sides.items()},
                  "identical_outputs": same, "summary": summary, "runs": runs}
        bench_engine.RESULTS.mkdir(parents=True, exist_ok=True)
        out = bench_engine.RESULTS / f"pairs_{args.events}_{args.scenario}.json"
        out.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
        print(f"results → {out.relative_to(ROOT)}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _input(args: argparse.Namespace, work: Path, sides: dict[str, Side]) -> tuple[str | None, Path]:
    """(source, config) of the measured runs; in the daily scenario also each side's history workspace."""
    if args.scenario == "full":
        path = DATA / f"events_{args.events}.parquet"
        if not path.exists():
            raise SystemExit(f"{path} not found; write it with: python benchmarks/generate_streams.py --events {args.events}")
        return str(path), DATA / "bench.yaml"
    files = bench_incremental.daily_files(args.events)
    src = work / "source"
    src.mkdir()
    for path in files[:HISTORY_DAYS]:
        shutil.copy(path, src / path.name)
    config = work / "bench.yaml"
    config.write_text(f"source: {src}/*.parquet\n" + (DATA / "bench.yaml").read_text())
    for side in sides.values():
        side.history = work / f"history_{side.label}"
        print(f"history ({HISTORY_DAYS} days) for {side.label}: "
              f"{side.run(None, config, side.history, full=True)['wall_s']} s", flush=True)
    shutil.copy(files[HISTORY_DAYS], src / files[HISTORY_DAYS].name)  # day 31: what every measured run adds
    return None, config


if __name__ == "__main__":
    raise SystemExit(main())
