"""`ask` latency on a workspace after start-up (a benchmark, not a test).

    python benchmarks/bench_ask.py --workspace .journeygraph-demo --rounds 5 [--json out.json]

Asks the question suite's demo questions (tests/narrator/ask_suite.py) round
after round, after one warm-up round (imports, first DuckDB/Oxigraph open).
Two paths are timed per question:
- `views_ask`: what `journeygraph ask` runs per question (open the workspace and the
  read-only fact store, plan, retrieve, answer, check);
- `mcp_ask`: the MCP server's and the HTTP API's path (engine.app.asking.AskCache): facts
  and vocabulary read once, reused until a run changes the workspace file.
Prints p50/p95/max in milliseconds for both. Without --workspace, builds the demo
workspace in a temporary folder first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "narrator"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "p50_ms": round(statistics.median(ms), 1), "p95_ms": round(percentile(ms, 0.95), 1),
            "max_ms": round(max(ms), 1)}


def build_demo(folder: Path) -> str:
    from engine.app import pipeline

    ws = folder / "ws"
    pipeline.run(config_path=str(ROOT / "fixtures" / "demo.yaml"), workspace=str(ws), quiet=True)
    return str(ws)


def time_views(workspace: str, questions: list[str], rounds: int) -> list[float]:
    from engine.app import views

    for q in questions:  # warm-up round
        views.ask(workspace, q)
    out = []
    for _ in range(rounds):
        for q in questions:
            start = time.perf_counter()
            views.ask(workspace, q)
            out.append((time.perf_counter() - start) * 1000.0)
    return out


def time_mcp(workspace: str, questions: list[str], rounds: int) -> list[float]:
    from engine.app.asking import AskCache

    cache = AskCache(workspace)
    for q in questions:  # warm-up round: the first question reads the workspace once
        cache.ask(q)
    out = []
    for _ in range(rounds):
        for q in questions:
            start = time.perf_counter()
            cache.ask(q)
            out.append((time.perf_counter() - start) * 1000.0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workspace", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args()
    from ask_suite import QUESTIONS

    questions = [q.question for q in QUESTIONS if q.ws == "demo"]
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or build_demo(Path(tmp))
        result: dict[str, Any] = {"questions": len(questions), "rounds": args.rounds,
                                  "views_ask": summary(time_views(workspace, questions, args.rounds)),
                                  "mcp_ask": summary(time_mcp(workspace, questions, args.rounds))}
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
