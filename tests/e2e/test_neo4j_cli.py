"""`store.backend: neo4j` end to end: run, feed, ask and `query --cypher` against a real Bolt server.

The server is ArcadeDB with its Bolt plugin (tests/boltserver.py), started here
on free loopback ports; credentials reach the CLI only through NEO4J_* variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.boltserver import BoltServer, running_server
from tests.e2e.conftest import DEMO_CONFIG, ROOT


@pytest.fixture(scope="module")
def bolt(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltServer]:
    with running_server(tmp_path_factory.mktemp("arcadedb"), "the Neo4j CLI test") as server:
        yield server


def cli(bolt: BoltServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **bolt.env(), "JOURNEYGRAPH_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-m", "engine.app.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_neo4j_backend_end_to_end(bolt: BoltServer, tmp_path: Path) -> None:
    cfg = yaml.safe_load(DEMO_CONFIG.read_text())
    cfg["source"] = str(DEMO_CONFIG.parent / cfg["source"])
    cfg["store"] = {"backend": "neo4j"}
    config = tmp_path / "journeygraph.yaml"
    config.write_text(yaml.safe_dump(cfg))
    ws = str(tmp_path / "ws")

    summary = json.loads(cli(bolt, "run", "-c", str(config), "-w", ws, "--format", "json").stdout)
    assert summary["facts"] > 0 and summary["insights"] > 0
    assert not (tmp_path / "ws" / "facts").exists(), "no embedded store when the backend is neo4j"

    rows = json.loads(cli(bolt, "query", "-w", ws, "--format", "json",
                          "--cypher", "MATCH (f:Fact) RETURN count(f) AS n").stdout)
    assert rows == [{"n": summary["facts"]}]

    feed = json.loads(cli(bolt, "feed", "-w", ws, "--format", "json").stdout)
    assert feed[0]["finding"]["subject"] == "state:import_data"
    answer = json.loads(cli(bolt, "ask", "which step is most associated with converting", "-w", ws,
                            "--format", "json").stdout)
    assert answer["fact_ids"] and "import_data" in answer["answer"]
