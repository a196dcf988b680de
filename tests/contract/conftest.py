"""Fixtures for the store contract suite: every test runs once per backend ("embedded", "neo4j").

The neo4j backend talks to a real Bolt server: ArcadeDB started here, in its
own process, on free loopback ports (tests/boltserver.py), once per session
and only if a neo4j test is collected. If NEO4J_URI is set, that server is
used instead and its database is WIPED before each test (point it at a
throw-away database). When the server cannot start, the neo4j tests FAIL with
the reason and the server log tail; they never skip silently.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from ontology.store import FactStore, StoreConfig, open_store
from tests.boltserver import BoltServer, running_server

BACKENDS = ("embedded", "neo4j")
ALLOWED_PROPERTIES = ("plan", "platform")


@dataclass
class BoltTarget:
    """Where the neo4j backend's server is; `server` is None for an external NEO4J_URI."""

    uri: str
    user: str
    password: str
    database: str | None
    server: BoltServer | None

    def store_config(self) -> StoreConfig:
        return StoreConfig(backend="neo4j", uri=self.uri, user=self.user, password=self.password, database=self.database)

    def env(self) -> dict[str, str]:
        env = {"NEO4J_URI": self.uri, "NEO4J_USER": self.user, "NEO4J_PASSWORD": self.password}
        if self.database:
            env["NEO4J_DATABASE"] = self.database
        return env

    def wipe(self) -> None:
        """Empty the database so each test starts from nothing (test-only; the store never deletes)."""
        from neo4j import GraphDatabase

        with GraphDatabase.driver(self.uri, auth=(self.user, self.password)) as driver:
            driver.execute_query("MATCH (n) DETACH DELETE n", database_=self.database)


@pytest.fixture(scope="session")
def bolt_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoltTarget]:
    if os.environ.get("NEO4J_URI"):
        yield BoltTarget(os.environ["NEO4J_URI"], os.environ.get("NEO4J_USER", "neo4j"),
                         os.environ.get("NEO4J_PASSWORD", ""), os.environ.get("NEO4J_DATABASE"), None)
        return
    with running_server(tmp_path_factory.mktemp("arcadedb"), "the neo4j contract tests") as server:
        yield BoltTarget(server.uri, server.auth[0], server.password, server.database, server)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class StoreSite:
    """One place a backend keeps facts; `open()` may be called again (reopen after a crash)."""

    backend: str
    workspace: Path
    bolt: BoltTarget | None
    opened: list[FactStore]

    def open(self, **options: Any) -> FactStore:
        cfg = self.bolt.store_config() if self.bolt else None
        store = open_store(self.backend, cfg, self.workspace, allowed_properties=ALLOWED_PROPERTIES, **options)
        self.opened.append(store)
        return store

    def writer_env(self) -> dict[str, str]:
        """Environment for a writer subprocess (tests/contract/writer.py) aimed at this site."""
        env = dict(os.environ, JG_BACKEND=self.backend, JG_WORKSPACE=str(self.workspace),
                   PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
        if self.bolt:
            env.update(self.bolt.env())
        return env


_databases = itertools.count()


@contextmanager
def _fresh_database(shared: BoltTarget) -> Iterator[BoltTarget]:
    """Our own server: a new database per test (dropped after). An external NEO4J_URI: its database, wiped."""
    if shared.server is None:
        shared.wipe()
        yield shared
        return
    name = f"t{next(_databases)}"
    shared.server.create_database(name)
    try:
        yield replace(shared, database=name)
    finally:
        shared.server.drop_database(name)


@pytest.fixture
def site(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[StoreSite]:
    with ExitStack() as stack:
        bolt = stack.enter_context(_fresh_database(request.getfixturevalue("bolt_target"))) if backend == "neo4j" else None
        site = StoreSite(backend, tmp_path / "workspace", bolt, [])
        site.workspace.mkdir()
        yield site
        for store in site.opened:
            try:
                store.close()
            except Exception:  # a store whose server was killed may fail to close; the test already judged it
                pass


@pytest.fixture
def store(site: StoreSite) -> FactStore:
    return site.open()


StoreOpener = Callable[..., FactStore]
