"""The workspace folder: one DuckDB file for events, journeys, snapshots, findings and
insights, the embedded fact store beside it, and the config of the last run.

Writes that must be atomic go through `Workspace.transaction()`; DuckDB's
single-file transactions mean a killed run leaves nothing half-written visible.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine import silver
from engine.config import Config, from_saved
from ontology.errors import Conflict, NotFound, WorkspaceBusy

DEFAULT_WORKSPACE = ".journeygraph"
# DuckDB refuses two threads attaching the same file at the same instant; the API serves
# requests from a thread pool, so opening and closing are serialised (queries are not).
_CONNECT_LOCK = threading.Lock()
DB_NAME = "journeygraph.duckdb"
RUN_WAIT_S = 60.0  # how long a run waits for readers (serve answering a request) to let go of the database
READ_WAIT_S = 2.0  # how long a read (a CLI view, an API request) waits for a run before it is WorkspaceBusy
CONFIG_NAME = "config.json"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS findings(finding_id VARCHAR PRIMARY KEY, snapshot_id VARCHAR, detector VARCHAR,
                                    type VARCHAR, payload JSON);
CREATE TABLE IF NOT EXISTS insights(insight_id VARCHAR PRIMARY KEY, finding_id VARCHAR, payload JSON);
CREATE TABLE IF NOT EXISTS feed(run_id VARCHAR, tenant_id VARCHAR, rank INTEGER, insight_id VARCHAR, item JSON);
CREATE TABLE IF NOT EXISTS runs(run_id VARCHAR, started_at VARCHAR, summary JSON, watermark TIMESTAMP);
"""


@dataclass
class Workspace:
    """An open workspace; `con` is the DuckDB connection to its database file."""

    path: Path
    con: duckdb.DuckDBPyConnection

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True, read_only: bool = False,
             wait_s: float = 0.0) -> Workspace:
        """Open (or create) the workspace; while another process holds the database lock, retry for `wait_s` s.

        DuckDB lets one process hold the file: `serve` opens it per request and `run` for a whole run, so a
        run that starts while a request is being answered waits for it (`pipeline.run` waits up to
        RUN_WAIT_S) instead of failing; a reader that still finds it busy gets WorkspaceBusy.
        """
        root = Path(path or os.environ.get("JOURNEYGRAPH_WORKSPACE") or DEFAULT_WORKSPACE)
        db = root / DB_NAME
        if not db.exists() and not create:
            raise NotFound(f"no workspace at {root}: run `journeygraph run EVENTS -w {root}` first")
        root.mkdir(parents=True, exist_ok=True)
        deadline, pause = time.monotonic() + wait_s, 0.02
        while True:
            try:
                with _CONNECT_LOCK:
                    con = duckdb.connect(str(db), read_only=read_only)
                break
            except duckdb.IOException as exc:
                busy = "lock" in str(exc).lower()
                if busy and time.monotonic() + pause < deadline:
                    time.sleep(pause)
                    pause = min(pause * 2, 1.0)
                    continue
                error = WorkspaceBusy if busy else Conflict
                raise error(f"cannot open workspace database {db}: {exc}; is another journeygraph process using it?") from exc
        if not read_only:
            con.execute(_SCHEMA)
        silver.attach(con, root, writable=not read_only)  # events, journey_steps: views over the Parquet layers
        return cls(path=root, con=con)

    @property
    def facts_dir(self) -> Path:
        return self.path / "facts"

    @property
    def artifacts_dir(self) -> Path:
        path = self.path / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    def has_table(self, name: str) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]
        ).fetchone()
        return bool(row and row[0])

    def save_config(self, raw: dict[str, Any]) -> None:
        """Keep the config of the last run so feed/ask/trace work without -c (atomic replace)."""
        target = self.path / CONFIG_NAME
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, sort_keys=True, indent=1, default=str))
        os.replace(tmp, target)

    def load_config_dict(self) -> dict[str, Any]:
        target = self.path / CONFIG_NAME
        if not target.exists():
            raise NotFound(f"workspace {self.path} has no run yet: run `journeygraph run EVENTS -w {self.path}` first")
        return json.loads(target.read_text())

    def config(self) -> Config:
        """The config of the workspace's last run (feed/ask/trace need no -c)."""
        return from_saved(self.load_config_dict(), base_dir=".")

    def close(self) -> None:
        with _CONNECT_LOCK:
            self.con.close()
