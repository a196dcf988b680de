"""SQL sources: rows of a query on DuckDB or Postgres, as one JSON document per row in Arrow batches.

``duckdb:///path/to.duckdb SELECT …`` (a URL, whitespace, a query; ``?query=…`` works too) is read from a
read-only connection of its own; ``postgresql://…`` is read with psycopg through a server-side cursor in
chunks (DuckDB's postgres extension cannot be downloaded here). A bare ``SELECT …`` runs on an in-memory
DuckDB (so it can read files). Split from `engine.ingest`, which stages the documents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa

from engine.dbsettings import quiet
from ontology.errors import IngestError

_CHUNK_ROWS = 50_000


def _split_sql_source(text: str) -> tuple[str, str]:
    """(url, query) from 'URL QUERY' or 'URL?query=QUERY'."""
    url, _, query = text.partition(" ")
    if not query.strip() and "query=" in url:
        base, _, params = url.partition("?")
        found = parse_qs(params).get("query", [""])[0]  # parse_qs already percent-decodes
        rest = "&".join(p for p in params.split("&") if not p.startswith("query="))
        url, query = (f"{base}?{rest}" if rest else base), found
    if not query.strip():
        raise IngestError(f"source {url}: a database source needs a query, e.g. `{url} SELECT * FROM events`")
    return url, query.strip()


def is_sql(text: str) -> bool:
    return text.lstrip().lower().startswith(("select ", "with ", "from "))


def sql_batches(text: str) -> tuple[str, Iterator[pa.Table]]:
    """(source label, batches of (line, raw JSON document)) for a SQL source."""
    if is_sql(text):
        return "sql", _duckdb_rows(":memory:", text)
    url, query = _split_sql_source(text)
    if url.lower().startswith("duckdb://"):
        path = url[len("duckdb://"):]
        if not os.path.isfile(path):
            raise IngestError(f"source {url}: no DuckDB file at {path}; check the path (duckdb:///absolute/path.duckdb)")
        return url, _duckdb_rows(path, query)
    return redact(url), _postgres_rows(url, query)


def redact(url: str) -> str:
    """A URL without its password, safe to store in quarantine rows and messages."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def _duckdb_rows(path: str, query: str) -> Iterator[pa.Table]:
    """Rows of a query on another DuckDB database, as JSON documents in Arrow batches."""
    try:
        src = quiet(duckdb.connect(path, read_only=path != ":memory:"))
    except duckdb.Error as exc:
        raise IngestError(f"DuckDB database {path} cannot be opened ({exc}); check the path and that no writer holds it") from exc
    try:
        reader = src.sql(f"SELECT to_json(q)::VARCHAR AS raw FROM ({query}) q").to_arrow_reader(_CHUNK_ROWS)
        line = 1
        for batch in reader:
            yield _numbered(line, batch.column(0))
            line += batch.num_rows
    except duckdb.Error as exc:
        raise IngestError(f"query on DuckDB database {path} failed ({str(exc).splitlines()[0]}); fix the source query") from exc
    finally:
        src.close()


def _numbered(first: int, raw: pa.Array) -> pa.Table:
    return pa.table({"line": pa.array(range(first, first + len(raw)), type=pa.int64()), "raw": raw})


def _postgres_rows(url: str, query: str) -> Iterator[pa.Table]:
    """Rows of a Postgres query, fetched through a server-side cursor in chunks, as JSON documents."""
    try:
        import psycopg
    except ImportError as exc:
        raise IngestError("reading from Postgres needs psycopg; install it with `pip install 'journeygraph[postgres]'`") from exc
    try:
        with psycopg.connect(url, autocommit=False) as pg, pg.cursor(name="journeygraph_ingest") as cur:
            cur.execute(query)  # the project's own query from its own config
            names = [d.name for d in cur.description or ()]
            line = 1
            while rows := cur.fetchmany(_CHUNK_ROWS):
                docs = [json.dumps(dict(zip(names, row)), default=str, ensure_ascii=False) for row in rows]
                yield _numbered(line, pa.array(docs, type=pa.string()))
                line += len(rows)
    except psycopg.Error as exc:
        raise IngestError(f"Postgres source {redact(url)} failed ({str(exc).strip().splitlines()[0]}); check the URL and query") from exc
