"""API latency while a run writes the same workspace (a benchmark, not a test; issue 18 defect 3).

    python benchmarks/bench_publish.py --workspace WS --config fixtures/demo.yaml --clients 3 --runs 2

Starts `journeygraph serve -w WS`, has CLIENTS threads poll /api/feed, /api/snapshots and /api/graph
(the last two open the database per request), runs `journeygraph run -c CONFIG -w WS` RUNS times
meanwhile, and prints per-status counts and p50/p95/max latency of the answers given during the runs.
Run it with PYTHONPATH pointing at the checkout to measure.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_api import free_port, wait_ready  # noqa: E402

PATHS = ("/api/feed", "/api/snapshots", "/api/graph")


def poll(url: str, stop: threading.Event, out: list[tuple[int, float]]) -> None:
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(url + PATHS[i % len(PATHS)], timeout=600) as res:
                res.read()
                status = res.status
        except urllib.error.HTTPError as exc:
            exc.read()
            status = exc.code
        out.append((status, time.perf_counter() - started))
        i += 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workspace", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--events", default=None)
    ap.add_argument("--clients", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    port = free_port()
    env = {**os.environ, "JOURNEYGRAPH_NO_PROGRESS": "1"}
    server = subprocess.Popen([sys.executable, "-m", "engine.app.cli", "serve", "-w", args.workspace, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, timeout=300)
        url = f"http://127.0.0.1:{port}"
        answers: list[tuple[int, float]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=poll, args=(url, stop, answers)) for _ in range(args.clients)]
        for t in threads:
            t.start()
        cmd = [sys.executable, "-m", "engine.app.cli", "run", *([args.events] if args.events else []),
               "-c", args.config, "-w", args.workspace]
        codes = [subprocess.run(cmd, env=env, capture_output=True).returncode for _ in range(args.runs)]
        stop.set()
        for t in threads:
            t.join()
    finally:
        server.terminate()
        server.wait(timeout=60)
    ok = sorted(s for status, s in answers if status == 200)
    print(json.dumps({
        "run_exit_codes": codes, "answers": len(answers), "by_status": dict(Counter(status for status, _ in answers)),
        "p50_ms_200": round(1000 * statistics.median(ok), 1) if ok else None,
        "p95_ms_200": round(1000 * ok[int(0.95 * (len(ok) - 1))], 1) if ok else None,
        "max_ms_all": round(1000 * max(s for _, s in answers), 1) if answers else None,
        "load_average": os.getloadavg(),
    }, indent=1))


if __name__ == "__main__":
    main()
