"""Read raw events from files or databases into the `staged_events` table.

Parquet and CSV rows are staged straight from their typed columns (no JSON
round trip); JSONL lines, XES events (by `engine.xes`) and SQL query rows
(through DuckDB's ``to_json``) are first one JSON document per row, tagged
with its file index and line number. Both paths end in the same vectorised
SQL tail (`_staging_sql`): recognised fields (DESIGN.md "Events in", after
the `normalize.fields` renames), unknown top-level fields folded into
`properties`, timestamps parsed to UTC, and exactly one quarantine reason per
unusable row. A typed column goes through its JSON text only where that
could differ (non-VARCHAR fields, unknown columns), and a row's raw text is
rebuilt only when it goes to quarantine, so typed and JSON sources keep
giving identical staged rows (tested per format).

JSONL is split into lines by numpy rather than read by ``read_json``: a
malformed line must become a quarantine row with its line number, not abort
the whole file (and CSV-style readers skip blank lines and trip on CRLF).
`engine.jsonl_lines` reads 128 MB blocks cut after a newline, finds the newlines
with numpy and makes each line a zero-copy Arrow string, so numbers are exact
and memory stays bounded (reading 10 M lines whole ran out of memory); DuckDB
stages each block on every thread. A .json array, or a file that is not
UTF-8, still goes through ``read_text``. Each line gets three cheap parses
(`json_valid`, `json_transform` for the fields, `json_keys` to see whether it
has unknown keys); the merge patch that builds the unknown-field object (a
rewrite, three times slower) runs only for lines that have some.
Parquet is read by DuckDB's reader, one thread per row group: reading a file
with one big row group by pyarrow in batches and staging them on every thread
cost 25% more CPU and was faster only on idle cores (-17% wall on 2 idle
cores, +20% with the cores shared), so it was not kept.
`staged_events` is a TEMP table: normalise on the same connection.

Quarantine reasons: bad_encoding (a JSONL line that is not UTF-8; the rest of the file is read, and
its raw text keeps U+FFFD for the bad bytes), not_json (not a JSON object), missing_timestamp,
bad_timestamp (not ISO 8601 with an offset/Z, nor epoch milliseconds, or outside the plausible
range [TS_MIN, TS_MAX): 1900-01-01 to 2200-01-01),
missing_event_name, missing_actor (no user_id, actor_id or anonymous_id).
Blank lines are not events and are not counted.

SQL sources: ``duckdb:///path/to.duckdb SELECT …`` (a URL, whitespace, a
query; ``?query=…`` works too) is read from a read-only connection of its
own; ``postgresql://…`` is read with psycopg through a server-side cursor in
chunks (DuckDB's postgres extension cannot be downloaded here). A bare
``SELECT …`` runs on an in-memory DuckDB (so it can read files).
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa

from engine import progress, xes
from engine.jsonl_lines import line_tables
from engine.config import Config
from engine.dbsettings import engine_settings
from ontology.errors import IngestError
from ontology.names import invisible_re2_class, show_name

log = logging.getLogger(__name__)

FIELDS = ("event_id", "user_id", "actor_id", "anonymous_id", "session_id", "event_name", "timestamp",
          "received_at", "platform", "tenant_id", "user_agent", "properties")
REASONS = ("bad_encoding", "not_json", "missing_timestamp", "bad_timestamp", "missing_event_name", "missing_actor")
# Plausible event times: outside [TS_MIN, TS_MAX) a timestamp is bad_timestamp (years 1, 9999 and 10000
# parse, but no behavioural event happened then, and Python's datetime cannot hold every one of them)
TS_MIN, TS_MAX = "1900-01-01", "2200-01-01"
LINE_BITS = 40  # input_order = file_index << 40 | line: 10^12 lines per file, 8M files
_RAW = "_jg_raw"
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "csv",
               ".parquet": "parquet", ".xes": "xes"}
_CHUNK_ROWS = 50_000
_ARROW = "_jg_arrow"  # the registered Arrow table being staged
# SQL: the row is not a blank or whitespace-only line (trim with a character set costs 1.5 us a row: most
# rows are decided by their first byte)
_BLANK = "(prefix(raw, '{{') OR trim(raw, ' ' || chr(9) || {tail}) <> '')"
_STAGED_DDL = """CREATE OR REPLACE TEMP TABLE staged_events (
    run_id VARCHAR, source VARCHAR, file_index INTEGER, line BIGINT, input_order BIGINT, reason VARCHAR, raw VARCHAR,
    event_id VARCHAR, user_id VARCHAR, anonymous_id VARCHAR, source_session_id VARCHAR, event_name VARCHAR,
    ts TIMESTAMP, received_at TIMESTAMP, platform VARCHAR, tenant_id VARCHAR, user_agent VARCHAR, properties JSON)"""


@dataclass(frozen=True)
class IngestStats:
    """What one load read: every non-blank row is either staged for normalisation or quarantined."""

    source: str
    files: tuple[str, ...]
    events_read: int
    quarantined: int
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)


def load(con: duckdb.DuckDBPyConnection, source: str, cfg: Config, run_id: str = "") -> IngestStats:
    """Read `source` into the temporary table `staged_events` (replacing it); append its bad rows to `quarantine`.

    `staged_events` is temporary (connection-scoped): call `engine.normalize.normalize` on the same connection.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_RAW} (file_index INTEGER, source VARCHAR, line BIGINT, raw VARCHAR)")
    con.execute(_STAGED_DDL)
    zone = con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0]
    con.execute("SET TimeZone = 'UTC'")  # a timestamp without an offset means UTC, whatever the machine's zone
    try:
        with engine_settings(con):
            files = _read_source(con, source, cfg, run_id)
            _stage(con, cfg, run_id)
            _write_quarantine(con, run_id)
            _warn_invisible_names(con)
    finally:
        if zone:
            con.execute("SET TimeZone = ?", [zone])
    con.execute(f"DROP TABLE IF EXISTS {_RAW}")
    return _stats(con, source, files)


def _warn_invisible_names(con: duckdb.DuckDBPyConnection) -> None:
    """Event names with zero-width, bidi or control characters print like other names: say so (they stay distinct)."""
    rows = con.execute("""SELECT name, count(*) OVER () FROM (SELECT DISTINCT event_name AS name FROM staged_events
                          WHERE reason IS NULL) WHERE regexp_matches(name, ?) ORDER BY name LIMIT 3""",
                       [invisible_re2_class()]).fetchall()
    if rows:
        log.warning("%d event names hold invisible characters (zero-width, bidi or control), e.g. %s; they are "
                    "distinct states, shown with \\uXXXX escapes", rows[0][1], ", ".join(show_name(r[0]) for r in rows))


def _stats(con: duckdb.DuckDBPyConnection, source: str, files: tuple[str, ...]) -> IngestStats:
    rows = con.execute("SELECT reason, count(*) FROM staged_events GROUP BY ALL ORDER BY ALL").fetchall()
    by_reason = {reason: n for reason, n in rows if reason is not None}
    if by_reason.get("bad_timestamp"):
        log.warning("%d rows quarantined as bad_timestamp: not ISO 8601 or epoch milliseconds, or outside the "
                    "plausible range %s to %s", by_reason["bad_timestamp"], TS_MIN, TS_MAX)
    return IngestStats(source=_redact(source.split()[0]) if "://" in source else source, files=files, events_read=sum(n for _, n in rows),
                       quarantined=sum(by_reason.values()), quarantined_by_reason=by_reason)


# --- sources -------------------------------------------------------------------------------


def _read_source(con: duckdb.DuckDBPyConnection, source: str, cfg: Config, run_id: str) -> tuple[str, ...]:
    text = source.strip()
    if text.lower().startswith(("duckdb://", "postgres://", "postgresql://")) or _is_sql(text):
        _read_sql_source(con, text)
        return (_redact(text.split()[0]) if not _is_sql(text) else "sql",)
    files = _expand(text)
    for index, path in enumerate(progress.track(files, total=len(files), desc="reading", unit="file")):
        _read_file(con, index, path, cfg, run_id)
    return tuple(files)


def _is_sql(text: str) -> bool:
    return text.lstrip().lower().startswith(("select ", "with ", "from "))


def _expand(pattern: str) -> list[str]:
    """Files matching a path or glob, sorted so file indices (and input order) are stable."""
    matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
    files = [m for m in matches if os.path.isfile(m)]
    if glob.has_magic(pattern):  # a glob (a watched folder) may also catch temp files: skip, do not fail
        skipped = [m for m in files if not _known_kind(m)]
        if skipped:
            log.warning("source %s: skipping %d files of no event type (e.g. %s)", pattern, len(skipped), skipped[0])
        files = [m for m in files if _known_kind(m)]
    if not files:
        raise IngestError(f"source {pattern}: no such file; give a path or glob of .jsonl, .csv, .parquet or .xes files")
    return files


def _known_kind(path: str) -> bool:
    return path.lower().endswith((".xes.gz", ".xes")) or Path(path.lower()).suffix in _EXTENSIONS


def _kind(path: str) -> str:
    name = path.lower()
    if name.endswith((".xes.gz", ".xes")):
        return "xes"
    kind = _EXTENSIONS.get(Path(name).suffix)
    if kind is None:
        raise IngestError(f"{path}: unknown file type; use .jsonl, .json, .ndjson, .csv, .tsv, .parquet, .xes or .xes.gz")
    return kind


def _read_file(con: duckdb.DuckDBPyConnection, index: int, path: str, cfg: Config, run_id: str) -> None:
    kind = _kind(path)
    try:
        if kind == "jsonl":
            _check_readable(path)
            if path.lower().endswith(".json") and _is_json_array(path):
                con.execute(f"INSERT INTO {_RAW} {_jsonl_sql(index, path)}")
            else:
                _stage_lines(con, index, path, _field_sources(cfg), run_id)
        elif kind == "csv":
            _stage_csv(con, index, path, _field_sources(cfg), run_id)
        elif kind == "parquet":
            _stage_parquet(con, index, path, _field_sources(cfg), run_id)
        else:
            _append_batches(con, index, path, xes.iter_batches(path))
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read as {kind} ({str(exc).splitlines()[0]}); check the file's format") from exc


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror}); check the path and its permissions") from exc


def _is_json_array(path: str) -> bool:
    """A .json file holding one JSON array of events rather than one event per line."""
    with open(path, "rb") as handle:
        head = handle.read(4096).lstrip()
    return head.startswith(b"[")


def _jsonl_sql(index: int, path: str) -> str:
    """Every non-blank line with its 1-based number (CRLF files keep a trailing CR, which JSON treats as whitespace).

    A .json file holding one array is split into its elements instead (line = 1-based element index).
    """
    array = path.lower().endswith(".json") and _is_json_array(path)
    items = "CAST(json_extract(content, '$[*]') AS VARCHAR[])" if array else "string_split(content, chr(10))"
    return f"""SELECT {int(index)} AS file_index, {_sql_string(path)} AS source, line, raw FROM (
                 SELECT generate_subscripts(items, 1) AS line, unnest(items) AS raw
                 FROM (SELECT {items} AS items FROM read_text({_sql_string(path)})))
               WHERE {_BLANK.format(tail="chr(13)")}"""


def _stage_lines(con: duckdb.DuckDBPyConnection, index: int, path: str, sources: dict[str, str], run_id: str) -> None:
    """Stage a JSONL file block by block, straight from its bytes (`engine.jsonl_lines`), on every DuckDB thread.

    A file that is not UTF-8 (DuckDB does not check Arrow strings, and a bad byte is a fatal error in its
    string functions) or fails midway has its rows dropped and goes to `read_text`, which gives the rows,
    or the error, it always gave.
    """
    tail = "chr(13) || chr(10)"
    relation = f"""(SELECT {int(index)} AS file_index, {_sql_string(path)} AS source, line, raw FROM {_ARROW}
                    WHERE {_BLANK.format(tail=tail)})"""
    bad: list[tuple[int, str]] = []
    try:
        for table in line_tables(path, bad):
            con.register(_ARROW, table)
            try:
                _stage_docs(con, sources, run_id, relation, tail)
            finally:
                con.unregister(_ARROW)
        _stage_bad_encoding(con, index, path, run_id, bad)
    except (pa.ArrowInvalid, OSError):
        con.execute("DELETE FROM staged_events WHERE file_index = ?", [index])
        con.execute(f"INSERT INTO {_RAW} {_jsonl_sql(index, path)}")


def _stage_bad_encoding(con: duckdb.DuckDBPyConnection, index: int, path: str, run_id: str,
                        bad: list[tuple[int, str]]) -> None:
    """Quarantine the lines that are not UTF-8 (text with U+FFFD for the bad bytes): the rest of the file stays."""
    if not bad:
        return
    log.warning("%s: %d lines are not valid UTF-8 (first: line %d); quarantined as bad_encoding", path, len(bad), bad[0][0])
    con.register("_jg_bad", pa.table({"line": [n for n, _ in bad], "raw": [text for _, text in bad]}))
    try:
        con.execute(f"""INSERT INTO staged_events (run_id, source, file_index, line, input_order, reason, raw)
                        SELECT ?, ?, ?, line, (CAST(? AS BIGINT) << {LINE_BITS}) | line, 'bad_encoding', raw FROM _jg_bad""",
                    [run_id, path, index, index])
    finally:
        con.unregister("_jg_bad")


def _append_batches(con: duckdb.DuckDBPyConnection, index: int, source: str, batches: Iterable[pa.Table]) -> None:
    for batch in batches:
        con.register("_jg_batch", batch)
        con.execute(f"INSERT INTO {_RAW} SELECT ?, ?, line, raw FROM _jg_batch", [index, source])
        con.unregister("_jg_batch")


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


def _read_sql_source(con: duckdb.DuckDBPyConnection, text: str) -> None:
    if _is_sql(text):
        _append_batches(con, 0, "sql", _duckdb_rows(":memory:", text))
        return
    url, query = _split_sql_source(text)
    if url.lower().startswith("duckdb://"):
        path = url[len("duckdb://"):]
        if not os.path.isfile(path):
            raise IngestError(f"source {url}: no DuckDB file at {path}; check the path (duckdb:///absolute/path.duckdb)")
        _append_batches(con, 0, url, _duckdb_rows(path, query))
    else:
        _append_batches(con, 0, _redact(url), _postgres_rows(url, query))


def _redact(url: str) -> str:
    """A URL without its password, safe to store in quarantine rows and messages."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return url


def _duckdb_rows(path: str, query: str) -> Iterator[pa.Table]:
    """Rows of a query on another DuckDB database, as JSON documents in Arrow batches."""
    try:
        src = duckdb.connect(path, read_only=path != ":memory:")
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
        raise IngestError(f"Postgres source {_redact(url)} failed ({str(exc).strip().splitlines()[0]}); check the URL and query") from exc


# --- parsing --------------------------------------------------------------------------------


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _field_sources(cfg: Config) -> dict[str, str]:
    """journeygraph field -> key in the source document (after normalize.fields renames)."""
    renames = dict(cfg.normalize.fields)
    return {name: renames.get(name, name) for name in FIELDS}


def _timestamp_sql(col: str) -> str:
    """ISO 8601 (any offset or Z; no offset = UTC) or epoch milliseconds -> naive UTC TIMESTAMP, else NULL.

    epoch_us() of a TIMESTAMPTZ is zone-independent, so the result does not
    depend on the session's TimeZone setting (and needs no ICU call per row). The number is named once,
    inside a lambda: written twice, DuckDB's common-subexpression pass would hoist the DOUBLE cast out of
    the lazy coalesce and run it on every row (measured: half the CPU of this expression).
    """
    epoch_ms = "lambda d: CASE WHEN abs(d) < 1e13 THEN epoch_ms(CAST(d AS BIGINT)) END"
    plausible = f"lambda t: CASE WHEN t >= TIMESTAMP '{TS_MIN}' AND t < TIMESTAMP '{TS_MAX}' THEN t END"
    return f"""list_transform([coalesce(make_timestamp(epoch_us(try_cast({col} AS TIMESTAMPTZ))),
                        list_transform([try_cast({col} AS DOUBLE)], {epoch_ms})[1])], {plausible})[1]"""


def _stage(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str) -> None:
    """Stage the JSON documents of `_RAW` (XES, SQL sources, JSON arrays): parse, extract, type, give reasons."""
    if con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {_RAW} LIMIT 1)").fetchall()[0][0]:
        _stage_docs(con, _field_sources(cfg), run_id, _RAW, "chr(13)")


def _stage_docs(con: duckdb.DuckDBPyConnection, sources: dict[str, str], run_id: str, relation: str, tail: str) -> None:
    """Stage rows (file_index, source, line, raw) of `relation`, one JSON document each.

    `tail` (SQL) is the set of characters a raw text may end with that are not part of the line: trimmed
    from quarantined raw text, and whitespace to JSON. Whitespace-only lines are not events: the readers
    leave them out (`_BLANK`); a filter on `ok` here was pushed below the projections and ran every
    line's json_keys twice (measured: a third of this statement's CPU).
    """
    spec = json.dumps({src: ("JSON" if name == "properties" else "VARCHAR") for name, src in sources.items()})
    known_nulls = json.dumps({src: None for src in sources.values()})
    f = {name: f"s.{_ident(src)}" for name, src in sources.items()}
    fields = f"""
        parsed AS (
          SELECT file_index, source, line, raw, (raw[1] = '{{' OR ltrim(raw)[1] = '{{') AND json_valid(raw) AS valid
          FROM {relation}),
        typed AS (SELECT *, CASE WHEN valid THEN json_transform(raw, {_sql_string(spec)}) END AS s FROM parsed),
        extra AS (   -- unknown top-level fields; the merge patch (a slow rewrite) only for lines that have some
          SELECT *, CASE WHEN valid THEN
                      CASE WHEN len(json_keys(raw)) = {_present_sql(sources)} THEN '{{}}'::JSON
                           ELSE try(json_merge_patch(raw, {_sql_string(known_nulls)})) END END AS extras
          FROM typed),
        checked AS (SELECT * REPLACE (CASE WHEN extras IS NOT NULL THEN s END AS s), extras IS NOT NULL AS ok FROM extra),
        fields AS (SELECT file_index, source, line, raw, ok, extras, {_field_columns(f)} FROM checked)"""
    con.execute(f"INSERT INTO staged_events {_staging_sql(fields, run_id, f'rtrim(raw, {tail})')}")


def _present_sql(sources: dict[str, str]) -> str:
    """How many recognised keys a parsed line holds with a non-null value.

    If that equals the line's number of keys, every key is a recognised one (each non-null field needs
    its own key), so the unknown-field object is {} without rewriting the line; a null or repeated key
    only sends the line down the exact (slower) merge-patch path.
    """
    return " + ".join(f"(s.{_ident(src)} IS NOT NULL)::INTEGER" for src in sorted(set(sources.values())))


def _field_columns(f: dict[str, str]) -> str:
    """The staged field columns from per-field source expressions (VARCHAR, or JSON for properties)."""
    v = {name: f"nullif({expr}, '')" for name, expr in f.items() if name != "properties"}
    return f"""{v['event_id']} AS event_id, coalesce({v['user_id']}, {v['actor_id']}) AS user_id,
               {v['anonymous_id']} AS anonymous_id, {v['session_id']} AS source_session_id,
               {v['event_name']} AS event_name, {v['timestamp']} AS ts_text, {v['received_at']} AS received_text,
               {v['platform']} AS platform, coalesce({v['tenant_id']}, '') AS tenant_id,
               {v['user_agent']} AS user_agent, {_props_object_sql(f['properties'])} AS props"""


def _staging_sql(fields_ctes: str, run_id: str, raw_expr: str) -> str:
    """The shared tail of every staging query: timestamps, the quarantine reason, raw text only for bad rows.

    `fields_ctes` must end in a CTE `fields` with file_index, source, line, ok, extras (JSON object of unknown
    top-level fields) and the `_field_columns`; `raw_expr` rebuilds a row's source text (evaluated only
    for quarantined rows: CASE evaluates a branch only for the rows that take it).
    """
    return f"""
        WITH {fields_ctes},
        timed AS (
          SELECT *, {_timestamp_sql('ts_text')} AS ts, {_timestamp_sql('received_text')} AS received_at FROM fields),
        reasoned AS (SELECT *, {_reason_sql()} AS reason FROM timed)
        SELECT {_sql_string(run_id)} AS run_id, source, file_index, line,
               (CAST(file_index AS BIGINT) << {LINE_BITS}) | line AS input_order, reason,
               CASE WHEN reason IS NOT NULL THEN rtrim({raw_expr}, chr(13)) END AS raw,
               event_id, user_id, anonymous_id, source_session_id, event_name, ts, received_at,
               platform, tenant_id, user_agent,
               CASE WHEN extras IS NULL OR extras::VARCHAR = '{{}}' THEN coalesce(props, '{{}}'::JSON)
                    WHEN props IS NULL THEN extras
                    ELSE json_merge_patch(extras, props) END AS properties
        FROM reasoned"""


# --- typed tables (Parquet, CSV): columns read as they are, no JSON round trip ---------------


def _stage_parquet(con: duckdb.DuckDBPyConnection, index: int, path: str, sources: dict[str, str], run_id: str) -> None:
    """Parquet rows straight from their columns; line = the row's position in the file (1-based), exact in parallel."""
    reader = f"read_parquet({_sql_string(path)}, file_row_number = true)"
    raw = """CAST(json_merge_patch(to_json(_jg_row), '{"file_row_number": null}') AS VARCHAR)"""
    _stage_typed(con, index, path, reader, "t.file_row_number + 1", raw, sources, run_id, hidden=("file_row_number",))


def _stage_csv(con: duckdb.DuckDBPyConnection, index: int, path: str, sources: dict[str, str], run_id: str) -> None:
    """CSV rows, every column as text; line = row number + 1 (the header line), so file order must be kept."""
    reader = f"(SELECT row_number() OVER () + 1 AS _jg_line, * FROM read_csv({_sql_string(path)}, all_varchar=true, header=true))"
    con.execute("SET preserve_insertion_order = true")  # row_number() OVER () follows the file only in order
    try:
        _stage_typed(con, index, path, reader, "t._jg_line", "to_json(_jg_row)::VARCHAR", sources, run_id,
                     hidden=("_jg_line",), row=True)
    finally:
        con.execute("SET preserve_insertion_order = false")


def _stage_typed(con: duckdb.DuckDBPyConnection, index: int, path: str, reader: str, line: str, raw: str,
                 sources: dict[str, str], run_id: str, hidden: tuple[str, ...] = (), row: bool = False) -> None:
    """Stage a typed table with the same rules (and results) as its rows' JSON documents would get.

    A known field of type VARCHAR is used as is; any other type goes through its JSON text, as
    `json_transform(…, 'VARCHAR')` would see it. Column names match field keys case-sensitively, like
    JSON keys. Unknown columns become `extras` exactly as the JSON pass's merge patch would build them.
    """
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader} t").fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]}); check the file's format") from exc
    types = {name: kind for name, kind, *_ in described if name not in hidden}
    f = {name: (_ident_col(src, types) if name != "properties" else
                (f"to_json(t.{_ident(src)})" if src in types else "CAST(NULL AS JSON)"))
         for name, src in sources.items()}
    unknown = [c for c in types if c not in set(sources.values())]
    extras = ("'{}'::JSON" if not unknown else
              "json_merge_patch(to_json({" + ", ".join(f"{_sql_string(c)}: t.{_ident(c)}" for c in unknown) + "}), '{}')")
    row_struct = (f"{{{', '.join(f'{_sql_string(c)}: t.{_ident(c)}' for c in types)}}}" if row else "t")
    fields = f"""fields AS (
          SELECT {int(index)} AS file_index, {_sql_string(path)} AS source, {line} AS line, true AS ok,
                 {extras} AS extras, {row_struct} AS _jg_row, {_field_columns(f)}
          FROM {reader} t)"""
    con.execute(f"INSERT INTO staged_events {_staging_sql(fields, run_id, raw)}")


def _ident_col(src: str, types: dict[str, str]) -> str:
    if src not in types:
        return "CAST(NULL AS VARCHAR)"
    col = f"t.{_ident(src)}"
    return col if types[src] == "VARCHAR" else f"json_extract_string(to_json({col}), '$')"


def _props_object_sql(props: str) -> str:
    """`properties` as a JSON object: an object as is, a string holding an object decoded, anything else wrapped."""
    text = f"json_extract_string({props}, '$')"
    return f"""(CASE WHEN {props} IS NULL OR {props}::VARCHAR = 'null' THEN NULL
                 WHEN left(CAST({props} AS VARCHAR), 1) = '{{' THEN {props}
                 WHEN json_type({props}) = 'VARCHAR' AND json_valid({text}) AND json_type({text}) = 'OBJECT' THEN CAST({text} AS JSON)
                 ELSE json_object('properties', {props}) END)"""


def _reason_sql() -> str:
    return """(CASE WHEN NOT ok THEN 'not_json'
                 WHEN ts_text IS NULL THEN 'missing_timestamp'
                 WHEN ts IS NULL OR NOT isfinite(ts) THEN 'bad_timestamp'
                 WHEN event_name IS NULL THEN 'missing_event_name'
                 WHEN user_id IS NULL AND anonymous_id IS NULL THEN 'missing_actor' END)"""


def _write_quarantine(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS quarantine (run_id VARCHAR, source VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR)")
    con.execute("DELETE FROM quarantine WHERE run_id = ?", [run_id])
    con.execute("""INSERT INTO quarantine
                   SELECT run_id, source, line, reason, raw FROM staged_events
                   WHERE reason IS NOT NULL ORDER BY input_order""")
