"""The bundled demo workspace, built once per test session and shared by the narrator tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


def demo_workspace(factory: pytest.TempPathFactory) -> Path:
    """The demo workspace (engine.app.pipeline.run_demo), built once per test session and shared."""
    root = factory.getbasetemp() / "narrator-demo"
    if not (root / "done").exists():
        from engine.app.pipeline import run_demo

        run_demo(str(root / "ws"), quiet=True)
        (root / "done").touch()
    return root / "ws"


@contextmanager
def open_demo(factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Any]]:
    """(workspace, its run config, its fact store) of the demo, closed afterwards."""
    from engine.workspace import Workspace
    from ontology.store import open_store

    ws = Workspace.open(demo_workspace(factory), create=False)
    cfg = ws.config()
    store = open_store(cfg.store.backend, cfg.store, ws.path)
    try:
        yield ws, cfg, store
    finally:
        store.close()
        ws.close()


