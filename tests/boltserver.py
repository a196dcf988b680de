"""A real Bolt server for tests and benchmarks: ArcadeDB (from `arcadedb-embedded`) in its own process.

Neo4j cannot be installed on the build machines, so the Neo4j fact store is
exercised through the official driver against ArcadeDB's Bolt plugin
(see shared/bolt-server.md). The server runs in a child process (it starts a
JVM) on free loopback ports; `start()` returns only once the Bolt port
accepts connections and `verify_connectivity()` passes, and raises
`BoltServerError` with the server log tail otherwise. Teardown is always by
the child's own pid. `kill()` + `restart()` keep the data dir and ports, for
crash tests.

Command line (for `.ci/run` and benchmarks):

    python tests/boltserver.py run -- CMD ARGS...   # start, run CMD with NEO4J_* set, stop
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

DATABASE = "facts"
USER = "root"
START_TIMEOUT_S = 180.0  # a JVM start on a loaded 2-core machine; normally ~3.5 s

# Runs inside the child. Reads its settings from the environment so no value is
# ever pasted into code.
_SERVER_SCRIPT = r"""
import os, signal, threading
from arcadedb_embedded.server import ArcadeDBServer
srv = ArcadeDBServer(root_path=os.environ["JG_ARCADE_DIR"], root_password=os.environ["JG_ARCADE_PASSWORD"],
    config={"host": "127.0.0.1", "http_port": int(os.environ["JG_ARCADE_HTTP_PORT"]),
            "server_plugins": "Bolt:com.arcadedb.bolt.BoltProtocolPlugin",
            "bolt_port": int(os.environ["JG_ARCADE_BOLT_PORT"])},
    jvm_kwargs={"heap_size": os.environ.get("JG_ARCADE_HEAP", "1g")})
srv.start()
for name in os.environ["JG_ARCADE_DATABASES"].split(","):
    try:
        srv.create_database(name)
    except Exception:
        pass  # already there after a restart on the same data dir
print("READY", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
stop.wait()
srv.stop()
"""


class BoltServerError(RuntimeError):
    """The test Bolt server could not be started; the message carries the log tail."""


def free_port() -> int:
    """A loopback port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=timeout).close()
        return True
    except OSError:
        return False


@dataclass
class BoltServer:
    """One ArcadeDB server process with the Bolt plugin, on loopback."""

    data_dir: Path
    bolt_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    password: str = ""  # default: kept in <data_dir>/root-password, so a later server on the same dir matches
    database: str = DATABASE
    heap: str = "1g"
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        if not self.password:
            stored = self.data_dir / "root-password"
            if not stored.exists():
                self.data_dir.mkdir(parents=True, exist_ok=True)
                stored.write_text("jg-" + secrets.token_hex(8))
            self.password = stored.read_text().strip()

    @property
    def uri(self) -> str:
        return f"bolt://127.0.0.1:{self.bolt_port}"

    @property
    def auth(self) -> tuple[str, str]:
        return (USER, self.password)

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def env(self) -> dict[str, str]:
        """The NEO4J_* variables a client (or `.ci/run`) needs to reach this server."""
        return {"NEO4J_URI": self.uri, "NEO4J_USER": USER, "NEO4J_PASSWORD": self.password,
                "NEO4J_DATABASE": self.database}

    def start(self, timeout: float = START_TIMEOUT_S) -> BoltServer:
        """Spawn the server and block until it answers Bolt, or raise BoltServerError."""
        if self.proc and self.proc.poll() is None:
            raise BoltServerError(f"Bolt server pid {self.proc.pid} is already running")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, JG_ARCADE_DIR=str(self.data_dir / "db"), JG_ARCADE_PASSWORD=self.password,
                   JG_ARCADE_HTTP_PORT=str(self.http_port), JG_ARCADE_BOLT_PORT=str(self.bolt_port),
                   JG_ARCADE_DATABASES=self.database, JG_ARCADE_HEAP=self.heap)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-u", "-c", _SERVER_SCRIPT], env=env, cwd=self.data_dir,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                code = self.proc.returncode if self.proc else None
                self._fail(f"ArcadeDB Bolt server exited with code {code} before it was ready")
            if b"READY" in self.log_path.read_bytes() and port_open(self.bolt_port):
                self._verify()
                return
            time.sleep(0.1)
        self.stop()
        self._fail(f"ArcadeDB Bolt server did not open {self.uri} within {timeout:g} s")

    def _verify(self) -> None:
        from neo4j import GraphDatabase

        try:
            with GraphDatabase.driver(self.uri, auth=self.auth, connection_timeout=10) as driver:
                driver.verify_connectivity()
        except Exception as exc:  # any failure here means the server is unusable; say why
            self.stop()
            self._fail(f"ArcadeDB Bolt server at {self.uri} failed verify_connectivity: {exc}")

    def _fail(self, what: str) -> None:
        raise BoltServerError(f"{what}; data dir {self.data_dir}; log tail:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def admin(self, command: str) -> None:
        """One ArcadeDB server command over its HTTP API (e.g. `create database t1`): Cypher cannot create databases."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/api/v1/server", data=json.dumps({"command": command}).encode(),
            headers={"Content-Type": "application/json",
                     "Authorization": "Basic " + base64.b64encode(f"{USER}:{self.password}".encode()).decode()})
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                response.read()
        except (OSError, urllib.error.HTTPError) as exc:
            raise BoltServerError(f"ArcadeDB at 127.0.0.1:{self.http_port} refused {command!r}: {exc}") from exc

    def create_database(self, name: str) -> None:
        """A fresh, empty database: cheaper and cleaner test isolation than deleting everything."""
        self.admin(f"create database {name}")

    def drop_database(self, name: str) -> None:
        self.admin(f"drop database {name}")

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM our own child, wait for it; SIGKILL it if it does not go."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """kill -9 the server (crash simulation); the data dir is kept."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.kill()
        self.proc.wait()

    def restart(self, timeout: float = START_TIMEOUT_S) -> BoltServer:
        """Start again on the same data dir and ports (after kill() or stop())."""
        self.stop()
        deadline = time.monotonic() + 30
        while port_open(self.bolt_port) and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.start(timeout)

    def __enter__(self) -> BoltServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _run(cmd: list[str]) -> int:
    """Start a throw-away server, run `cmd` with NEO4J_* set, stop the server."""
    with tempfile.TemporaryDirectory(prefix="jg-bolt-") as tmp, BoltServer(Path(tmp)) as server:
        print(f"boltserver: ArcadeDB Bolt at {server.uri} (pid {server.pid})", file=sys.stderr)
        return subprocess.call(cmd, env=dict(os.environ, **server.env()))


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "run" and argv[1] == "--" and len(argv) > 2:
        return _run(argv[2:])
    print("usage: python tests/boltserver.py run -- CMD ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


@contextmanager
def running_server(directory: Path, needed_by: str) -> Iterator[BoltServer]:
    """A started server for a test fixture, stopped afterwards; one that cannot start fails the test (never a skip)."""
    import pytest

    server = BoltServer(directory)
    try:
        server.start()
    except BoltServerError as exc:
        pytest.fail(f"{needed_by} need(s) a Bolt server and it could not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
