"""Analysts' queries stay local and bounded (issue 18 #7): no SPARQL SERVICE, no Cypher file access, time and row caps."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ontology import query_guard, rdf
from ontology.embedded_store import EmbeddedStore
from ontology.errors import StoreError
from tests.ontology.conftest import many_facts


class Listener:
    """A SPARQL endpoint on loopback that records every request it gets."""

    def __init__(self) -> None:
        self.hits: list[str] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                listener.hits.append(self.path)
                self.send_response(200)
                self.send_header("content-type", "application/sparql-results+json")
                self.end_headers()
                self.wfile.write(b'{"head":{"vars":["s"]},"results":{"bindings":[{"s":{"type":"literal","value":"x"}}]}}')

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/sparql"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize("form", ["SERVICE <{url}> {{ ?s ?p ?o }}", "service   SILENT <{url}> {{ ?s ?p ?o }}",
                                  "# SERVICE in a comment\n SERVICE<{url}>{{?s ?p ?o}}"])
def test_sparql_service_is_refused_and_sends_nothing(store: EmbeddedStore, form: str) -> None:
    listener = Listener()
    try:
        with pytest.raises(StoreError, match="SERVICE"):
            rdf.sparql(store, "SELECT * WHERE { " + form.format(url=listener.url) + " }")
        assert listener.hits == []
    finally:
        listener.server.shutdown()
        listener.server.server_close()


def test_service_in_a_literal_or_iri_is_not_a_keyword(store: EmbeddedStore) -> None:
    store.write(many_facts(3))
    assert rdf.sparql(store, 'SELECT ?s WHERE { ?s <http://x/SERVICE> "SERVICE" } # SERVICE') == []


def test_a_runaway_sparql_query_is_abandoned_at_its_deadline(store: EmbeddedStore) -> None:
    store.write(many_facts(12))  # ~160 triples: the abandoned count of 160^3 rows ends a few seconds later
    started = time.monotonic()
    with pytest.raises(StoreError, match="did not finish within 0.1 s"):
        rdf.sparql(store, "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i }", timeout_s=0.1)
    assert time.monotonic() - started < 5


def test_sparql_rows_are_capped_with_a_warning(store: EmbeddedStore, caplog) -> None:
    store.write(many_facts(20))
    rows = rdf.sparql(store, "SELECT ?f WHERE { ?f a jg:Fact }", max_rows=5)
    assert len(rows) == 5
    assert "cut off at 5 rows" in caplog.text
    assert len(rdf.sparql(store, "SELECT ?f WHERE { ?f a jg:Fact }")) == 20


@pytest.mark.parametrize(("query", "refused"), [
    ("LOAD CSV FROM 'file:///etc/passwd' AS l RETURN l", True),
    ("LOAD/**/CSV FROM 'x' AS l RETURN l", True),
    ("CALL apoc.load.json('file:///x') YIELD value RETURN value", True),
    ("RETURN apoc.util.md5(['a'])", True),
    ("CALL dbms.components()", True),
    ("CALL db.index.fulltext.createNodeIndex('x', ['Fact'], ['id'])", True),
    ("MATCH (f:Fact) WHERE f.note = 'LOAD CSV FROM file' RETURN f // CALL apoc.x", False),
    ("CALL db.labels() YIELD label RETURN label", False),
    ("MATCH (f:Fact) CALL { WITH f RETURN f.id AS id } RETURN id", False),
], ids=["load_csv", "load_csv_comment", "apoc_load", "apoc_function", "dbms", "db_index_create", "in_literal",
        "db_labels", "subquery"])
def test_cypher_check(query: str, refused: bool) -> None:
    if refused:
        with pytest.raises(StoreError, match="refused"):
            query_guard.check_cypher(query)
    else:
        query_guard.check_cypher(query)
