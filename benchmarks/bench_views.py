"""Views on a workspace with many distinct states (issue #18 defect 5): a benchmark, not a test.

    python benchmarks/bench_views.py --states 2000 5000

Generates the many-names stream (fixtures/many_states.py: n/2 users, signup → name_{2u} →
name_{2u+1}, some browsing, a third buying), times `journeygraph run` on it, then `journeygraph
snapshot --format json`, `feed --format html`, `export --format turtle`, the web page's first load
on a fresh `serve` (the requests app.js makes on load, in order: the page, its script, /api/feed,
/api/graph, /api/power) and `GET /api/graph` again (median of five), and prints each as a multiple
of the run's wall time (target: within 2×), with the load average before and after. Every command
runs in its own process, as a user runs it; results go to results/bench_views.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
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


PAGE_LOAD = ("/", "/static/app.js", "/api/feed?limit=500", "/api/graph", "/api/power")


def page_times(workspace: str) -> tuple[float, float, float]:
    """On a fresh server: (the page's first load, its /api/graph share, median of five more /api/graph)."""
    port = free_port()
    server = subprocess.Popen(CLI + ["serve", "-w", workspace, "--port", str(port)], stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        times = {path: get(port, path) for path in PAGE_LOAD}
        return sum(times.values()), times["/api/graph"], statistics.median(get(port, "/api/graph") for _ in range(5))
    finally:
        server.terminate()
        server.wait(10)


def one(states: int, tmp: Path) -> dict[str, object]:
    events, config = many_states.write(tmp / f"data{states}", states)
    ws = str(tmp / f"ws{states}")
    load_before = os.getloadavg()[0]
    run_s = timed(["run", str(events), "-c", str(config), "-w", ws])
    views = {"snapshot_s": timed(["snapshot", "-w", ws, "--format", "json"]),
             "feed_html_s": timed(["feed", "-w", ws, "--format", "html"]),
             "export_turtle_s": timed(["export", "-w", ws, "--format", "turtle"])}
    page, graph, median = page_times(ws)
    views.update(page_first_load_s=page, api_graph_first_s=graph, api_graph_median_s=median)
    return {"states": states, "run_s": round(run_s, 2), **{k: round(v, 3) for k, v in views.items()},
            **{k.replace("_s", "_over_run"): round(v / run_s, 2) for k, v in views.items()},
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--states", type=int, nargs="+", default=[2000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [one(n, Path(tmp)) for n in args.states]
    print(json.dumps(results, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_views.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
