"""Answering questions in a long-lived process (the MCP server, the HTTP API): read the workspace once.

`views.ask` opens the workspace and the fact store for every question; most of
its latency is that opening. AskCache keeps what answering needs (the facts,
the vocabulary, each snapshot's scope: narrator.ask.Prepared) and re-reads it
only when a run has published a new database file (engine.publish).
"""

from __future__ import annotations

import threading
from typing import Any


class AskCache:
    """Prepared workspace data for `ask`, refreshed when the workspace's database file changes."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace = workspace
        self._key: tuple[int, int, int] | None = None
        self._prep: Any = None
        self._lock = threading.Lock()

    def prepared(self) -> Any:
        """The current Prepared data, re-read when a run has published since the last question."""
        from engine.app.views import _session
        from engine.workspace import published_stamp
        from narrator.ask import prepare

        with self._lock:
            key = published_stamp(self.workspace)  # inode, mtime, size: a publish renames a new file in
            if key is None or key != self._key:
                with _session(self.workspace) as (ws, cfg, store):
                    self._prep = prepare(list(store.facts()), ws.con, cfg)
                self._key = key
            return self._prep

    def ask(self, question: str) -> dict[str, Any]:
        from narrator.ask import answer_prepared

        return answer_prepared(question, self.prepared())
