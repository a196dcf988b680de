"""The workspace folder: one DuckDB file for events, journeys, snapshots, findings and
insights, the embedded fact store beside it, and the config of the last run.

The DuckDB file `journeygraph.duckdb` is published, never written in place (engine.publish):
a run writes a private copy and renames it over the published file, so a reader sees one
whole run or the one before, never a mixture. Readers open it read-only (`Workspace.read`)
and never wait for a run; only `Workspace.build` (under the run lock) writes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine import publish, silver
from engine.config import Config, from_saved
from engine.dbsettings import quiet
from ontology.errors import Conflict, NotFound, WorkspaceBusy

log = logging.getLogger(__name__)

DEFAULT_WORKSPACE = ".journeygraph"
# DuckDB refuses two threads attaching the same file at the same instant; the API serves
# requests from a thread pool, so opening and closing are serialised (queries are not).
_CONNECT_LOCK = threading.Lock()
DB_NAME = "journeygraph.duckdb"
RUN_WAIT_S = 300.0  # how long a run waits for another run (the run lock) before it is WorkspaceBusy
READ_WAIT_S = 2.0  # how long a read waits for a lock (an old workspace's write-ahead log being absorbed)
CONFIG_NAME = "config.json"
_READ_ALIAS = "jg"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS findings(finding_id VARCHAR PRIMARY KEY, snapshot_id VARCHAR, detector VARCHAR,
                                    type VARCHAR, payload JSON);
CREATE TABLE IF NOT EXISTS insights(insight_id VARCHAR PRIMARY KEY, finding_id VARCHAR, payload JSON);
CREATE TABLE IF NOT EXISTS feed(run_id VARCHAR, tenant_id VARCHAR, rank INTEGER, insight_id VARCHAR, item JSON);
CREATE TABLE IF NOT EXISTS runs(run_id VARCHAR, started_at VARCHAR, summary JSON, watermark TIMESTAMP);
CREATE TABLE IF NOT EXISTS workspace_config(saved JSON);
"""


def root_of(path: str | Path | None) -> Path:
    return Path(path or os.environ.get("JOURNEYGRAPH_WORKSPACE") or DEFAULT_WORKSPACE)


def published_stamp(path: str | Path | None) -> tuple[int, int, int] | None:
    """What changes when a run publishes (inode, mtime, size of the published file); None before the first run."""
    try:
        st = (root_of(path) / DB_NAME).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class Workspace:
    """An open workspace; `con` is the DuckDB connection to its database file (published, or a run's build)."""

    path: Path
    con: duckdb.DuckDBPyConnection
    build_file: Path | None = None  # set for a run's private copy (Workspace.build)
    saved: dict[str, Any] | None = None  # the config save_config stored, written to config.json once published

    @classmethod
    def read(cls, path: str | Path | None = None, *, wait_s: float = READ_WAIT_S) -> Workspace:
        """The published database, read-only: never waits for a run, sees one whole published run.

        It is attached read-only to a private in-memory database rather than connected by path:
        DuckDB reuses an open instance per path within a process, which would keep serving the
        file a rename has replaced; an attachment opens the file the path names now, and is kept
        for the next reader while that file stays published (_attach_read_only). TEMP views and
        tables live in the in-memory database, one per reader.
        """
        root = root_of(path)
        db = root / DB_NAME
        if not db.exists():
            if publish.run_active(root):
                raise WorkspaceBusy(f"workspace {display(root)} has no published run yet: its first run is "
                                    "still being built; retry when it finishes")
            raise NotFound(f"no workspace at {display(root)}: run `journeygraph run EVENTS -w {display(root)}` first")
        _absorb_wal(db, wait_s)
        deadline, pause = time.monotonic() + wait_s, 0.02
        while True:
            try:
                return cls(path=root, con=_with_layers(_attach_read_only(db), root, writable=False))
            except duckdb.Error as exc:
                message = str(exc).lower()
                if "in use" in message:  # this process has the file open read-write (a tool, a test): share it
                    return cls(path=root, con=_with_layers(duckdb.connect(str(db)), root, writable=True))
                if "lock" not in message:
                    raise Conflict(f"cannot read workspace {display(root)}: {_duckdb_reason(exc)}") from None
                if time.monotonic() + pause >= deadline:  # another process writes the file in place (0.1, a tool)
                    raise WorkspaceBusy(f"workspace {display(root)} is being written in place by another process; "
                                        "retry shortly") from None
                time.sleep(pause)
                pause = min(pause * 2, 0.5)

    @classmethod
    def open(cls, path: str | Path | None = None, *, create: bool = True, read_only: bool = False,
             wait_s: float = 0.0) -> Workspace:
        """`read_only`: `Workspace.read`. Otherwise the published file itself, read-write, for tools and tests
        that edit a workspace no run is using; runs write a private copy (`Workspace.build`)."""
        if read_only:
            return cls.read(path, wait_s=max(wait_s, READ_WAIT_S))
        root = root_of(path)
        db = root / DB_NAME
        if not db.exists() and not create:
            raise NotFound(f"no workspace at {display(root)}: run `journeygraph run EVENTS -w {display(root)}` first")
        root.mkdir(parents=True, exist_ok=True)
        return cls(path=root, con=_with_layers(_connect_rw(db, wait_s, root), root, writable=True))

    @classmethod
    @contextmanager
    def build(cls, path: str | Path | None = None, *, wait_s: float = RUN_WAIT_S) -> Iterator[Workspace]:
        """A run's workspace: under the run lock, a private copy of the published file, published on success.

        Leaving the block normally publishes (engine.publish.publish); an exception discards the copy
        and leaves the published file as it was.
        """
        root = root_of(path)
        root.mkdir(parents=True, exist_ok=True)
        with publish.run_lock(root, wait_s):
            published = root / DB_NAME
            _absorb_wal(published, wait_s)  # a 0.1 workspace killed mid-run: its log belongs in the copy
            build_file = publish.new_build(root, published)
            con = _with_layers(_connect_rw(build_file, 0.0, root), root, writable=True)  # layers live beside it
            ws = cls(path=root, con=con, build_file=build_file)
            try:
                yield ws
                started = time.perf_counter()
                ws.con.execute("CHECKPOINT")
                ws.close()
                log.info("publish: checkpoint and close in %.3f s", time.perf_counter() - started)
                publish.publish(build_file, published)
                ws.after_publish()
            except BaseException:
                ws.close()
                publish.discard(build_file)
                raise

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
            "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND database_name = current_database()", [name]
        ).fetchone()
        return bool(row and row[0])

    def save_config(self, raw: dict[str, Any]) -> None:
        """Keep the config of the last run so feed/ask/trace work without -c.

        It goes into the database (published with the run it describes) and, once published, to
        config.json beside it for people and older readers."""
        self.saved = raw
        self.con.execute("DELETE FROM workspace_config")
        self.con.execute("INSERT INTO workspace_config VALUES (?)", [json.dumps(raw, sort_keys=True, default=str)])
        if self.build_file is None:
            self._write_config_file(raw)

    def after_publish(self) -> None:
        if self.saved is not None:
            self._write_config_file(self.saved)

    def _write_config_file(self, raw: dict[str, Any]) -> None:
        target = self.path / CONFIG_NAME
        tmp = target.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw, sort_keys=True, indent=1, default=str))
        os.replace(tmp, target)

    def load_config_dict(self) -> dict[str, Any]:
        """The saved config: the database's own (published with its run), else config.json (an older workspace)."""
        if self.has_table("workspace_config"):
            row = self.con.execute("SELECT saved FROM workspace_config").fetchone()
            if row is not None:
                return dict(json.loads(row[0]))
        target = self.path / CONFIG_NAME
        if not target.exists():
            raise NotFound(f"workspace {display(self.path)} has no run yet: "
                           f"run `journeygraph run EVENTS -w {display(self.path)}` first")
        return dict(json.loads(target.read_text()))

    def config(self) -> Config:
        """The config of the workspace's last run (feed/ask/trace need no -c)."""
        return from_saved(self.load_config_dict(), base_dir=".")

    def close(self) -> None:
        with _CONNECT_LOCK:
            self.con.close()


# Per published file: (its inode, mtime, size when attached, the in-memory instance it is attached to)
_READERS: dict[str, tuple[tuple[int, int, int], duckdb.DuckDBPyConnection]] = {}
_READERS_KEPT = 4


def _with_layers(con: duckdb.DuckDBPyConnection, root: Path, *, writable: bool) -> duckdb.DuckDBPyConnection:
    """`con` with the Parquet layers' views (events, journey_steps; engine.silver), resolved against the
    workspace folder: a run's private copy under .build/ reads and writes the same layer files. DuckDB's
    progress bar prints nothing (engine.dbsettings.quiet)."""
    silver.attach(quiet(con), root, writable=writable)
    return con


def _attach_read_only(db: Path) -> duckdb.DuckDBPyConnection:
    """A cursor on this process's read-only attachment of the published file, attached anew after a publish.

    A new DuckDB instance costs tens of milliseconds (more under load), a cursor on a kept one about one:
    the API answers many requests between runs. The instance is kept per file version; a publish renames a
    new file in, the next reader attaches that, and the old instance goes when its last cursor closes
    (dropped, not closed: closing it would close the cursors still reading it). TEMP objects are per cursor.
    """
    st = db.stat()
    stamp, key = (st.st_ino, st.st_mtime_ns, st.st_size), str(db)
    with _CONNECT_LOCK:
        kept = _READERS.get(key)
        if kept is None or kept[0] != stamp:
            base = duckdb.connect(":memory:")
            try:
                base.execute(f"ATTACH '{_quoted(db)}' AS {_READ_ALIAS} (READ_ONLY)")
            except BaseException:
                base.close()
                raise
            _READERS.pop(key, None)
            kept = _READERS[key] = (stamp, base)
            while len(_READERS) > _READERS_KEPT:  # a process reading many workspaces (tests) keeps a few
                _READERS.pop(next(iter(_READERS)))
        cursor = kept[1].cursor()
    cursor.execute(f"USE {_READ_ALIAS}")
    return cursor


def _forget_reader(db: Path) -> None:
    """Drop this process's kept read-only attachment of `db` so a read-write open of it is not refused."""
    with _CONNECT_LOCK:
        _READERS.pop(str(db), None)


def _connect_rw(db: Path, wait_s: float, root: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection, retried while another process holds the file for `wait_s`; the schema ensured."""
    _forget_reader(db)
    deadline, pause = time.monotonic() + wait_s, 0.02
    while True:
        try:
            with _CONNECT_LOCK:
                con = duckdb.connect(str(db))
            break
        except duckdb.IOException as exc:
            busy = "lock" in str(exc).lower()
            if busy and time.monotonic() + pause < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            error = WorkspaceBusy if busy else Conflict
            raise error(f"cannot open workspace {display(root)} for writing: {_duckdb_reason(exc)}; "
                        "is another journeygraph process using it?") from None
    con.execute(_SCHEMA)
    return con


def _absorb_wal(db: Path, wait_s: float) -> None:
    """Fold the write-ahead log an older version's killed run left beside the published file into it.

    Published files never have one (a build is checkpointed before it is renamed); a 0.1 workspace
    may. Opening it read-write once replays and checkpoints the log, so readers and copies see it.
    """
    if db.with_name(db.name + ".wal").exists():
        _connect_rw(db, wait_s, db.parent).close()


def _quoted(path: Path) -> str:
    return str(path).replace("'", "''")


def _duckdb_reason(exc: BaseException) -> str:
    """DuckDB's message reduced to its kind: it names absolute paths, the interpreter and a PID."""
    text = str(exc)
    if "lock" in text.lower():
        return "the database file is locked by another process"
    return text.split(":", 1)[0] if ":" in text else type(exc).__name__


def display(root: Path) -> str:
    """The workspace as the user named it: relative to the working directory when it is below it."""
    if not root.is_absolute():
        return str(root)
    try:
        return str(root.relative_to(Path.cwd()))
    except ValueError:
        return root.name


_PID = re.compile(r"\bPID \d+", re.IGNORECASE)


def public_message(message: str, workspace: str | Path | None = None) -> str:
    """An error message without the workspace's absolute path, the interpreter's path or a process id."""
    if workspace is not None:
        root = Path(workspace)
        for form in sorted({str(root.resolve()), str(root.absolute())}, key=len, reverse=True):
            message = message.replace(form, display(root))
    for form in sorted({sys.executable, os.path.realpath(sys.executable)}, key=len, reverse=True):
        if len(form) > 1:
            message = message.replace(form, "<python>")
    return _PID.sub("PID …", message)
