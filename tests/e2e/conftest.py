"""Shared end-to-end fixtures: one demo workspace built through the real pipeline, a live API server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONFIG = ROOT / "fixtures" / "demo.yaml"
SERVER_START_S = 180.0  # readiness limit for a server start under load (issue 18 #10); normally well under 1 s


def run_cli(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the installed console script's module exactly as a user would (no shell)."""
    proc = subprocess.run([sys.executable, "-m", "engine.app.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=_env(), timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"journeygraph {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["JOURNEYGRAPH_NO_PROGRESS"] = "1"
    for key in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "NEO4J_URI"):
        env.pop(key, None)
    return env


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo fixture run once through `journeygraph run` (a real DuckDB file and fact store)."""
    ws = tmp_path_factory.mktemp("demo") / "ws"
    run_cli("run", "-c", str(DEMO_CONFIG), "-w", str(ws), "--format", "json")
    return ws


@pytest.fixture
def demo_copy(demo_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the demo workspace for tests that write."""
    target = tmp_path / "ws"
    shutil.copytree(demo_workspace, target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving the real app on a free loopback port, in a thread."""

    def __init__(self, workspace: Path, token: str | None = None) -> None:
        import uvicorn

        from engine.app.api import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(str(workspace), token), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        """Return once GET /health answers; a loaded 2-core machine may need a long time, a dead thread none."""
        self.thread.start()
        deadline = time.monotonic() + SERVER_START_S
        while not self._ready():
            if not self.thread.is_alive():
                raise RuntimeError(f"API server on port {self.port} stopped before it was ready (port taken?)")
            if time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"API server not ready after {SERVER_START_S:g} s")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        import urllib.request

        if not self.server.started:
            return False
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=30) as res:
                return bool(res.status == 200)
        except OSError:
            return False

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_api(demo_workspace: Path) -> Iterator[LiveServer]:
    with LiveServer(demo_workspace) as server:
        yield server
