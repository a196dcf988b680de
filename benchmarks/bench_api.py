"""API latency under load: /api/feed with N concurrent clients on loopback (a benchmark, not a test).

    python benchmarks/bench_api.py --workspace .journeygraph-demo --clients 20 --requests 2000

Starts `journeygraph serve` in a subprocess, drives it with a thread pool of
keep-alive HTTP clients, and prints p50/p95/p99 latency and requests/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not become ready")


def client(port: int, path: str, n: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path)
        res = conn.getresponse()
        res.read()
        out.append(time.perf_counter() - t0)
        if res.status != 200:
            raise SystemExit(f"{path} answered {res.status}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workspace", default=".journeygraph-demo")
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--path", default="/api/feed")
    args = ap.parse_args()
    if not Path(args.workspace, "journeygraph.duckdb").exists():
        subprocess.run([sys.executable, "-m", "engine.app.cli", "demo", "-w", args.workspace], check=True,
                       stdout=subprocess.DEVNULL)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "engine.app.cli", "serve", "-w", args.workspace, "--port", str(port)],
                              stdout=subprocess.DEVNULL)
    try:
        wait_ready(port)
        client(port, args.path, 20)  # warm-up
        per = args.requests // args.clients
        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            lat = sorted(x for xs in pool.map(lambda _: client(port, args.path, per), range(args.clients)) for x in xs)
        wall = time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(10)
    q = statistics.quantiles(lat, n=100)
    result = {"path": args.path, "clients": args.clients, "requests": len(lat), "rps": round(len(lat) / wall, 1),
              "p50_ms": round(q[49] * 1000, 2), "p95_ms": round(q[94] * 1000, 2), "p99_ms": round(q[98] * 1000, 2)}
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "bench_api.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
