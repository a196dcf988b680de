"""`serve` and `run` on one workspace (issue 18): runs wait for readers, readers get 503 + Retry-After, no paths.

Real processes: the runs are `journeygraph run` subprocesses, the server is uvicorn in a thread, and
three clients poll it while the runs write.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.e2e.conftest import LiveServer, run_cli
from tests.engine.hostile import base_events, config_file, dumps, write_lines

HOLD_LOCK = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
"""
PATHLIKE = re.compile(r"(?<![\w.:])/(?!api/)[\w.-]+/")


def _workspace(tmp_path: Path) -> tuple[Path, Path, Path]:
    src = write_lines(tmp_path / "e.jsonl", dumps(base_events()))
    cfg = config_file(tmp_path / "c.yaml")
    ws = tmp_path / "ws"
    run_cli("run", str(src), "-c", str(cfg), "-w", str(ws))
    return src, cfg, ws


def test_a_run_waits_for_a_reader_to_let_go(tmp_path: Path) -> None:
    src, cfg, ws = _workspace(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(ws / "journeygraph.duckdb"), "3"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    run_cli("run", str(src), "-c", str(cfg), "-w", str(ws))  # raises if the run failed
    assert time.monotonic() - started >= 1.0  # it did have to wait
    assert holder.wait(timeout=60) == 0


def _poll(url: str, stop: threading.Event, answers: list[tuple[int, str, str | None]]) -> None:
    paths = ("/api/feed", "/api/snapshots", "/api/graph", "/api/facts?limit=5")
    i = 0
    while not stop.is_set():
        req = urllib.request.Request(url + paths[i % len(paths)])
        try:
            with urllib.request.urlopen(req, timeout=120) as res:
                answers.append((res.status, res.read().decode()[:300], None))
        except urllib.error.HTTPError as exc:
            answers.append((exc.code, exc.read().decode(), exc.headers.get("retry-after")))
        i += 1
        time.sleep(0.1)


def test_runs_succeed_while_clients_poll_and_answers_stay_clean(tmp_path: Path) -> None:
    src, cfg, ws = _workspace(tmp_path)
    answers: list[tuple[int, str, str | None]] = []
    stop = threading.Event()
    with LiveServer(ws) as server:
        pollers = [threading.Thread(target=_poll, args=(server.url, stop, answers)) for _ in range(3)]
        for t in pollers:
            t.start()
        try:
            results = [run_cli("run", str(src), "-c", str(cfg), "-w", str(ws), check=False) for _ in range(3)]
        finally:
            stop.set()
            for t in pollers:
                t.join(timeout=180)
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr[-500:] for r in results]
    assert answers and {status for status, _, _ in answers} <= {200, 503}
    for status, body, retry_after in answers:
        assert status == 200 or retry_after is not None
        assert "PID" not in body and not PATHLIKE.search(body), body
