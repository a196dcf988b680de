"""Answering questions in a long-lived process (the MCP server, the HTTP API): read the workspace once.

`views.ask` opens the workspace and the fact store for every question; most of
its latency is that opening. AskCache keeps what answering needs (the facts,
the vocabulary, each snapshot's scope: narrator.ask.Prepared) and re-reads it
only when a run has changed the workspace's database file (size or mtime).
The workspace is not held open between questions, so `journeygraph run` can
still write to it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


class AskCache:
    """Prepared workspace data for `ask`, refreshed when the workspace's database file changes."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace = workspace
        self._db: Path | None = None  # the database file, known after the first read
        self._key: tuple[int, int] | None = None
        self._prep: Any = None
        self._lock = threading.Lock()

    def _stamp(self) -> tuple[int, int] | None:
        if self._db is None:
            return None
        stat = self._db.stat()
        return stat.st_mtime_ns, stat.st_size

    def prepared(self) -> Any:
        """The current Prepared data, re-read when the workspace changed since the last question."""
        from engine.app.views import _session
        from engine.workspace import DB_NAME
        from narrator.ask import prepare

        with self._lock:
            key = self._stamp()
            if key is None or key != self._key:
                with _session(self.workspace) as (ws, cfg, store):
                    self._prep = prepare(list(store.facts()), ws.con, cfg)
                    self._db = Path(ws.path) / DB_NAME
                self._key = self._stamp()
            return self._prep

    def ask(self, question: str) -> dict[str, Any]:
        from narrator.ask import answer_prepared

        return answer_prepared(question, self.prepared())
