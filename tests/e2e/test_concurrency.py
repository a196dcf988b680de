"""`serve`, `run` and `watch` on one workspace (issue 18, defect 3): readers never lock a run out, nor it them.

Real processes: the server is `journeygraph serve` (waited for by polling /health), the writers are
`journeygraph run` and `journeygraph watch --once`, and a reader that holds its connection open is a
separate Python process. Nothing here asserts a duration.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, SERVER_START_S, _env, free_port, run_cli
from tests.e2e.publishing import feed_ids, inputs, kill, outputs, start_stopped

POLLED = ("/api/feed", "/api/snapshots", "/api/graph", "/api/facts?limit=5", "/api/power")
Answer = tuple[str, int, str, str | None]


class Server:
    """`journeygraph serve` as its own process on a free port; ready once GET /health answers."""

    def __init__(self, ws: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (ws.parent / f"serve-{self.port}.log").open("w")  # a file: a full pipe would stall the server
        self.proc = subprocess.Popen([sys.executable, "-m", "engine.app.cli", "serve", "-w", str(ws), "--port",
                                      str(self.port)], cwd=ROOT, env=_env(), stdout=self.log, stderr=self.log)

    def __enter__(self) -> Server:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=30) as res:
                    if res.status == 200:
                        return self
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"serve did not become ready (rc {self.proc.returncode})")
            time.sleep(0.1)

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()  # by its own handle
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=60)
        self.log.close()


def get(url: str) -> Answer:
    try:
        with urllib.request.urlopen(url, timeout=300) as res:
            return url, res.status, res.read().decode(), None
    except urllib.error.HTTPError as exc:
        return url, exc.code, exc.read().decode(), exc.headers.get("retry-after")


def _poll(url: str, stop: threading.Event, answers: list[Answer]) -> None:
    i = 0
    while not stop.is_set():
        answers.append(get(url + POLLED[i % len(POLLED)]))
        i += 1


def assert_clean(answers: list[Answer], ws: Path, server_pid: int) -> None:
    """200, or 503 with Retry-After; no body names the workspace's path, the interpreter or a process id."""
    secrets = {str(ws), str(ws.resolve()), sys.executable, os.path.realpath(sys.executable), str(ROOT)}
    for url, status, body, retry_after in answers:
        assert status == 200 or (status == 503 and retry_after), (url, status, body)
        assert not any(s in body for s in secrets), (url, body[:300])
        if status != 200:
            assert "PID" not in body and str(server_pid) not in body, body


class _Hook(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_serve_answers_three_pollers_while_two_runs_and_a_watch_write(tmp_path: Path, hook: str) -> None:
    a, b, cfg = inputs(tmp_path)
    cfg.write_text(json.dumps({**json.loads(cfg.read_text()), "webhooks": [{"url": hook}]}))
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "events.jsonl").write_bytes(b.read_bytes())
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    answers: list[Answer] = []
    stop = threading.Event()
    with Server(ws) as server:
        pollers = [threading.Thread(target=_poll, args=(server.url, stop, answers)) for _ in range(3)]
        for t in pollers:
            t.start()
        try:
            watcher = subprocess.Popen([sys.executable, "-m", "engine.app.cli", "watch", str(folder), "-c", str(cfg),
                                        "-w", str(ws), "--once"], cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            runs = [run_cli("run", str(src), "-c", str(cfg), "-w", str(ws), check=False) for src in (b, a)]
            watched = watcher.communicate(timeout=900)
        finally:
            stop.set()
            for t in pollers:
                t.join(timeout=600)
        after = [get(server.url + path) for path in POLLED]
        assert_clean(answers + after, ws, server.proc.pid)
    # a published run exists throughout, so the one documented 503 (first run still building) cannot apply
    assert {status for _, status, _, _ in answers} == {200}, [a for a in answers if a[1] != 200][:3]
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-800:] for r in runs]
    assert watcher.returncode == 0, watched[1][-800:]
    assert len(answers) >= 3 and all(status == 200 for _, status, _, _ in after)
    assert _Hook.received, "the watch pass delivered its new insights"
    assert (ws / "deliveries.duckdb").is_file() and not (ws / ".build").exists()


HOLD_READER = """
import json, sys
from engine.workspace import Workspace
ws = Workspace.read(sys.argv[1])
before = [r[0] for r in ws.con.execute("SELECT insight_id FROM feed ORDER BY rank").fetchall()]
print("open", flush=True)
sys.stdin.readline()
after = [r[0] for r in ws.con.execute("SELECT insight_id FROM feed ORDER BY rank").fetchall()]
runs = ws.con.execute("SELECT count(*) FROM runs").fetchall()[0][0]
print(json.dumps({"before": before, "after": after, "runs": runs}), flush=True)
"""


def test_a_reader_holding_the_workspace_open_does_not_stop_a_run_from_publishing(tmp_path: Path) -> None:
    """Defect 3's reproduction: a reader keeps its connection while a run on new input publishes."""
    a, b, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    old_feed = feed_ids(outputs(ws)[0])
    holder = subprocess.Popen([sys.executable, "-c", HOLD_READER, str(ws)], cwd=ROOT, env=_env(),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert holder.stdout.readline().strip() == "open"
        run_cli("run", str(b), "-c", str(cfg), "-w", str(ws))  # raises if it failed; the reader is still open
        new_feed = feed_ids(outputs(ws)[0])
        holder.stdin.write("go\n")
        holder.stdin.flush()
        seen = json.loads(holder.stdout.readline())
    finally:
        holder.stdin.close()
        holder.wait(timeout=300)
    assert seen["before"] == seen["after"] == old_feed and seen["runs"] == 1, "the open reader keeps one whole run"
    assert new_feed != old_feed


def test_before_the_first_run_is_published_readers_get_a_clean_503(tmp_path: Path) -> None:
    a, _, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    proc = start_stopped(a, cfg, ws, "snapshots")
    try:
        with Server(ws) as server:
            answers = [get(server.url + path) for path in POLLED]
            assert {status for _, status, _, _ in answers} == {503}
            assert_clean(answers, ws, server.proc.pid)
            assert "still being built" in answers[0][2]
        cli = run_cli("feed", "-w", str(ws.resolve()), check=False)
        assert cli.returncode == 2 and "still being built" in cli.stderr
        assert str(ws.resolve()) not in cli.stderr and sys.executable not in cli.stderr
    finally:
        kill(proc)


def test_cli_and_api_errors_show_no_path_interpreter_or_pid(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    cli = run_cli("snapshots", "-w", str(missing), check=False)
    assert cli.returncode == 2 and "no workspace" in cli.stderr
    assert str(missing) not in cli.stderr and sys.executable not in cli.stderr and "PID" not in cli.stderr
    a, _, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    with Server(ws) as server:
        answers = [get(server.url + p) for p in ("/api/insights/0123456789abcdef", "/api/snapshots/ffffffff",
                                                  "/api/insights/zz/trace", "/api/feed?segment=nope")]
        assert {status for _, status, _, _ in answers} <= {400, 404, 422} and len(answers) == 4
        for url, _, body, _ in answers:
            assert str(ws) not in body and str(ws.resolve()) not in body and sys.executable not in body, (url, body)
            assert "PID" not in body and str(server.proc.pid) not in body, (url, body)


def test_a_long_lived_reader_process_sees_each_publish_whole(tmp_path: Path) -> None:
    """In one process (like `serve`): the kept read-only attachment serves the old file to a reader that has
    it open and the new file to every reader after the publish (engine.workspace._attach_read_only)."""
    from engine.app import views
    from engine.workspace import Workspace

    a, b, cfg = inputs(tmp_path)
    ws = tmp_path / "ws"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(ws))
    old = [i["insight_id"] for i in views.feed_items(str(ws))]
    held = Workspace.read(ws)
    try:
        run_cli("run", str(b), "-c", str(cfg), "-w", str(ws))
        new = [i["insight_id"] for i in views.feed_items(str(ws))]
        still = [r[0] for r in held.con.execute("SELECT insight_id FROM feed ORDER BY rank").fetchall()]
    finally:
        held.close()
    assert still == old and new == feed_ids(outputs(ws)[0]) and new != old
