"""What only a server-backed store can get wrong: an unreachable or crashing server, the graph shape, raw Cypher.

Runs against the same real Bolt server as the contract suite (ArcadeDB
started by conftest, or NEO4J_URI). The crash tests kill -9 the server
process and restart it on the same data dir and ports.
"""

from __future__ import annotations

import threading

import pytest

from ontology.errors import StoreError, StoreUnavailable
from ontology.neo4j_store import DEFAULT_URI, Connection
from ontology.store import StoreConfig, open_store
from tests.boltserver import free_port
from tests.contract.conftest import BoltTarget, StoreSite
from tests.contract.factset import make_facts
from tests.contract.test_store_contract import _assert_complete_after_rerun, _assert_graph_integrity, _start_writer, _wait_for_chunk

pytestmark = pytest.mark.parametrize("backend", ["neo4j"], indirect=True)

FACTS = make_facts(60)


def _own_server(site: StoreSite) -> BoltTarget:
    assert site.bolt is not None
    if site.bolt.server is None:
        pytest.skip("NEO4J_URI points at an external server; these tests kill and restart the server they started")
    return site.bolt


def test_unreachable_server_is_one_line_store_unavailable(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = f"bolt://127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable) as err:
        open_store("neo4j", StoreConfig(backend="neo4j", uri=uri, user="root", password="x"), tmp_path)
    message = str(err.value)
    assert "\n" not in message
    assert message == f"Neo4j at {uri} did not answer in 5 s; start it or set store.backend: embedded"


@pytest.mark.parametrize(("cfg", "environ", "expected"), [
    pytest.param(StoreConfig(backend="neo4j"), {}, Connection(DEFAULT_URI, None, None, None), id="defaults"),
    pytest.param(StoreConfig(backend="neo4j"), {"NEO4J_URI": "bolt://db:7687", "NEO4J_USER": "u", "NEO4J_PASSWORD": "p",
                                                "NEO4J_DATABASE": "facts"},
                 Connection("bolt://db:7687", "u", "p", "facts"), id="environment"),
    pytest.param(StoreConfig(backend="neo4j", uri="bolt://cfg:7687", user="cu", password="cp", database="cd"),
                 {"NEO4J_URI": "bolt://env:7687", "NEO4J_USER": "eu", "NEO4J_PASSWORD": "ep", "NEO4J_DATABASE": "ed"},
                 Connection("bolt://cfg:7687", "cu", "cp", "cd"), id="config-wins-over-environment"),
])
def test_connection_settings_come_from_config_then_environment(backend: str, cfg: StoreConfig,
                                                               environ: dict[str, str], expected: Connection) -> None:
    assert Connection.resolve(cfg, environ) == expected


def test_a_uri_that_is_not_bolt_is_refused_with_the_fix(backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError, match="is not a Bolt URI") as err:
        open_store("neo4j", StoreConfig(backend="neo4j", uri="http://127.0.0.1:7474", password="x"), tmp_path)
    assert "NEO4J_URI" in str(err.value) and "\n" not in str(err.value)


def test_wrong_password_names_the_settings_to_fix(site: StoreSite) -> None:
    assert site.bolt is not None
    cfg = StoreConfig(backend="neo4j", uri=site.bolt.uri, user=site.bolt.user, password="not-the-password",
                      database=site.bolt.database)
    with pytest.raises(StoreError, match="NEO4J_PASSWORD") as err:
        open_store("neo4j", cfg, site.workspace)
    assert not isinstance(err.value, StoreUnavailable)
    assert site.bolt.uri in str(err.value)


def test_graph_has_typed_entities_predicate_edges_and_links(site: StoreSite) -> None:
    store = site.open()
    store.write(FACTS)
    transitions = [f for f in FACTS if f.predicate == "transitions_to"]
    rows = store.cypher(  # type: ignore[attr-defined]
        "MATCH (s:State)-[r:TRANSITIONS_TO]->(o) RETURN r.fact_id AS fact_id, s.id AS s, o.id AS o ORDER BY fact_id")
    assert rows == sorted(({"fact_id": f.fact_id, "s": f.subject, "o": f.object} for f in transitions),
                          key=lambda r: r["fact_id"])
    dropoffs = store.cypher("MATCH (p:Path)-[r:IS_DROPOFF_POINT_FOR]->(j:Journey {id: $j}) RETURN count(r) AS n",  # type: ignore[attr-defined]
                            {"j": "journey:activation"})
    assert dropoffs == [{"n": sum(1 for f in FACTS if f.predicate == "is_dropoff_point_for" and f.subject.startswith("path:"))}]
    derived = store.cypher("MATCH (f:Fact)-[:DERIVED_FROM]->(s:Snapshot {id: 'snapshot:snapB'}) RETURN count(f) AS n")  # type: ignore[attr-defined]
    assert derived == [{"n": sum(1 for f in FACTS if f.provenance.snapshot_id == "snapB")}]
    _assert_graph_integrity(store)


@pytest.mark.parametrize("query", [
    pytest.param("CREATE (s:State {id: 'state:evil'}) RETURN s.id AS id", id="create"),
    pytest.param("MATCH (f:Fact) SET f.confidence = 0.0 RETURN count(f) AS n", id="set"),
    pytest.param("MATCH (f:Fact) DETACH DELETE f", id="delete"),
])
def test_cypher_helper_is_read_only(site: StoreSite, query: str) -> None:
    store = site.open()
    store.write(FACTS)
    before = list(store.facts())
    with pytest.raises(StoreError, match="read-only"):
        store.cypher(query)  # type: ignore[attr-defined]
    assert list(store.facts()) == before
    assert store.cypher("MATCH (s:State {id: 'state:evil'}) RETURN count(s) AS n") == [{"n": 0}]  # type: ignore[attr-defined]


def test_cypher_helper_reports_a_bad_query_in_one_line(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StoreError, match="fix the query") as err:
        store.cypher("MATCH (f:Fact RETURN f")
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_open_store_rides_out_a_server_restart(site: StoreSite) -> None:
    """A store opened before a crash works again after the restart: the driver reconnects, tenacity retries."""
    bolt = _own_server(site)
    assert bolt.server is not None
    store = site.open(max_attempts=60)
    store.write(FACTS[:30])
    bolt.server.kill()
    restarter = threading.Thread(target=bolt.server.restart)
    restarter.start()
    try:
        assert store.write(FACTS) == 30  # retried with backoff until the server is back
    finally:
        restarter.join()
    assert list(store.facts()) == sorted(FACTS, key=lambda f: f.fact_id)


@pytest.mark.slow
def test_server_killed_mid_write_then_rerun_gives_every_fact_once(site: StoreSite) -> None:
    bolt = _own_server(site)
    assert bolt.server is not None
    n, chunk = 600, 50
    writer = _start_writer(site, n, chunk)
    _wait_for_chunk(writer)
    bolt.server.kill()  # kill -9 the database while the writer is inside a later batch
    _, err = writer.communicate()
    assert writer.returncode == 3, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("StoreUnavailable: Neo4j at " + bolt.uri)
    assert "start it and re-run" in last
    bolt.server.restart()
    _assert_complete_after_rerun(site, n)


@pytest.mark.parametrize("query", [
    pytest.param("LOAD CSV FROM 'file:///{secret}' AS line RETURN line", id="load_csv_file"),
    pytest.param("load /* x */ csv with headers from 'file:///{secret}' AS line RETURN line", id="load_csv_hidden"),
    pytest.param("CALL apoc.load.json('file:///{secret}') YIELD value RETURN value", id="apoc_load"),
    pytest.param("CALL dbms.listConfig() YIELD name RETURN name", id="dbms"),
])
def test_cypher_helper_refuses_file_and_server_access(store, tmp_path, query: str) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.csv"
    secret.write_text("token,s3cret\n")
    with pytest.raises(StoreError, match="refused") as err:
        store.cypher(query.format(secret=str(secret).lstrip("/")))
    assert "s3cret" not in str(err.value)


def test_cypher_helper_caps_rows(store, caplog) -> None:  # type: ignore[no-untyped-def]
    store.write(FACTS)
    rows = store.cypher("MATCH (f:Fact) RETURN f.id AS id", max_rows=7)  # type: ignore[attr-defined]
    assert len(rows) == 7 < len(FACTS)
    assert "cut off at 7 rows" in caplog.text
