"""The FactStore protocol and the registry that opens a backend by name.

Backends are registered by name and imported only when chosen (the rdflib
plugin pattern), so the embedded default never pays for the Neo4j driver and a
missing optional dependency is reported with the exact install command.

Every backend's ``write`` calls :func:`ontology.validation.validate_fact` on
each fact before touching storage, so all backends refuse the same things.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from ontology.errors import StoreError
from ontology.model import Fact
from ontology.plugins import Plugin, PluginRegistry


@dataclass(frozen=True)
class StoreConfig:
    """The config's `store:` section: which backend, and where its server is (Neo4j)."""

    backend: str = "embedded"
    uri: str | None = None
    user: str | None = None
    password: str | None = None
    database: str | None = None


@runtime_checkable
class FactStore(Protocol):
    """What every fact store offers; one suite (tests/contract) checks all backends."""

    name: ClassVar[str]

    def write(self, facts: Sequence[Fact]) -> int:
        """Store facts; idempotent on fact_id; returns the number newly written."""
        ...

    def facts(
        self,
        *,
        entity: str | None = None,
        predicate: str | None = None,
        snapshot_id: str | None = None,
    ) -> Iterator[Fact]:
        """Facts matching every given filter (entity = subject or object), sorted by fact_id."""
        ...

    def get(self, fact_id: str) -> Fact | None:
        """One fact by id, or None."""
        ...

    def count(self) -> int:
        """Number of distinct facts stored."""
        ...

    def close(self) -> None:
        """Release files, locks and connections."""
        ...


BACKENDS = PluginRegistry("store", [
    Plugin("embedded", "ontology.embedded_store:EmbeddedStore", "pyoxigraph", "pip install 'pyoxigraph>=0.4' 'oxrdflib>=0.4'"),
    Plugin("neo4j", "ontology.neo4j_store:Neo4jStore", "neo4j", "pip install 'neo4j>=5.20'"),
])


def open_store(name: str, cfg: StoreConfig | None, workspace: Path, **options: Any) -> FactStore:
    """Open the backend called `name` (the config's store.backend), importing it only now.

    `workspace` is the journeygraph workspace directory; the embedded store
    keeps its files in `<workspace>/facts`. Extra keyword options go to the
    backend's ``open`` classmethod (e.g. allowed_properties for privacy checks).
    """
    backend = BACKENDS.get(name)
    if backend is None:
        raise StoreError(f"unknown store backend {name!r}; valid backends: {', '.join(BACKENDS.names())} (set store.backend)")
    try:
        store_cls = backend.load()
    except ImportError as exc:
        raise StoreError(f"store backend {exc}") from exc
    store: FactStore = store_cls.open(cfg, Path(workspace), **options)
    return store
