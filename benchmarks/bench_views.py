"""Views on a workspace with many distinct states (issue #18 defect 5): a benchmark, not a test.

    python benchmarks/bench_views.py --states 2000

Generates the many-names stream (fixtures/many_states.py: n/2 users, signup → name_{2u} →
name_{2u+1}, every third buying), times `journeygraph run` on it, then `journeygraph snapshot
--format json`, `feed --format html` and `GET /api/graph` (a fresh `serve`, first request and the
median of five), and prints each as a multiple of the run's wall time (target: within 2×).
Every command runs in its own process, as a user runs it; results go to results/bench_views.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_api import free_port, wait_ready  # noqa: E402

from fixtures import many_states  # noqa: E402

CLI = [sys.executable, "-m", "engine.app.cli"]


def timed(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(CLI + args, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def get(port: int, path: str) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=900)
    t0 = time.perf_counter()
    conn.request("GET", path)
    res = conn.getresponse()
    res.read()
    if res.status != 200:
        raise SystemExit(f"{path} answered {res.status}")
    return time.perf_counter() - t0


def graph_times(workspace: str) -> tuple[float, float]:
    """(first request, median of the next five) for GET /api/graph on a fresh server."""
    port = free_port()
    server = subprocess.Popen(CLI + ["serve", "-w", workspace, "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        first = get(port, "/api/graph")
        return first, statistics.median(get(port, "/api/graph") for _ in range(5))
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, default=2000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        events, config = many_states.write(Path(tmp) / "data", args.states)
        ws = str(Path(tmp) / "ws")
        run_s = timed(["run", str(events), "-c", str(config), "-w", ws])
        snapshot_s = timed(["snapshot", "-w", ws, "--format", "json"])
        html_s = timed(["feed", "-w", ws, "--format", "html"])
        first, median = graph_times(ws)
    result = {"states": args.states, "run_s": round(run_s, 2), "snapshot_s": round(snapshot_s, 2),
              "feed_html_s": round(html_s, 2), "api_graph_first_s": round(first, 3),
              "api_graph_median_s": round(median, 3),
              "snapshot_over_run": round(snapshot_s / run_s, 2), "api_graph_first_over_run": round(first / run_s, 2)}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_views.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
