"""Read raw events from files or databases into the `staged_events` table.

Parquet and CSV rows are staged straight from their typed columns (no JSON
round trip); JSONL lines, XES events (by `engine.xes`) and SQL query rows
(through DuckDB's ``to_json``) are first one JSON document per row, tagged
with its file index and line number. Both paths end in the same vectorised
SQL tail (`staging_sql`): recognised fields (DESIGN.md "Events in", after
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

Each file's shape (Segment, PostHog, Amplitude, Mixpanel, GA4, pm4py CSV, a
plain table, sessions with nested events) and its time column's unit are
detected from a sample by `engine.formats` and reported in `IngestStats.notes`;
`normalize.fields`, `normalize.timestamp_unit` and `normalize.timestamp_format`
override them. Timestamps are parsed by `engine.timestamps`, SQL sources read by `engine.sql_sources`.

Quarantine reasons: bad_encoding (a JSONL line that is not UTF-8; the rest of the file is read, and
its raw text keeps U+FFFD for the bad bytes), not_json (not a JSON object), missing_timestamp,
bad_timestamp (not ISO 8601 with an offset/Z, nor epoch milliseconds, or outside the plausible
range [TS_MIN, TS_MAX): 1900-01-01 to 2200-01-01),
missing_event_name, missing_actor (no user_id, actor_id or anonymous_id).
Blank lines are not events and are not counted.

Quarantine reasons: not_json (not a JSON object), missing_timestamp,
bad_timestamp (not ISO 8601, nor the format given, nor an epoch number in the
column's unit), missing_event_name, missing_actor (no user_id, actor_id or
anonymous_id). Blank lines are not events and are not counted.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import duckdb
import pyarrow as pa

from engine import formats, incremental, progress, sql_sources, timestamps, xes
from engine.config import Config
from engine.dbsettings import engine_settings
from engine.formats import Reading
from engine.jsonl_lines import line_tables
from engine.staging_sql import (
    FIELDS,
    LINE_BITS,
    coalesced,
    doc_expr,
    field_columns,
    ident,
    sql_string,
    staging_sql,
    top_keys,
    typed_expr,
)
from ontology.errors import IngestError
from ontology.names import invisible_re2_class, show_name

log = logging.getLogger(__name__)

REASONS = ("bad_encoding", "not_json", "missing_timestamp", "bad_timestamp", "missing_event_name", "missing_actor")
TS_MIN, TS_MAX = timestamps.TS_MIN, timestamps.TS_MAX  # plausible event times; outside them: bad_timestamp
_RAW = "_jg_raw"
SOURCES = "_jg_sources"  # file index -> source and run id (staged rows carry them only when quarantined)
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
    notes: tuple[str, ...] = ()  # how each file was read (its detected shape, time column and unit), and warnings


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
            notes: list[str] = []
            sources: dict[int, str] = {}
            files = _read_source(con, source, cfg, run_id, notes, sources)
            _stage(con, cfg, run_id)
            _keep_sources(con, run_id, sources)
            _write_quarantine(con, run_id)
            _warn_invisible_names(con)
    finally:
        if zone:
            con.execute("SET TimeZone = ?", [zone])
    con.execute(f"DROP TABLE IF EXISTS {_RAW}")
    return _stats(con, source, files, notes)


def _keep_sources(con: duckdb.DuckDBPyConnection, run_id: str, sources: dict[int, str]) -> None:
    """`SOURCES`: each file index's source and the run id, which staging keeps on quarantined rows only.

    Why: a file path and a run id on every staged row cost about 70 bytes a row in memory (700 MB at
    10 M events, a third of the memory limit); rejected rows (duplicates, bots, late) look them up here.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SOURCES} (file_index INTEGER, source VARCHAR, run_id VARCHAR)")
    if sources:
        con.executemany(f"INSERT INTO {SOURCES} VALUES (?, ?, ?)", [(i, path, run_id) for i, path in sorted(sources.items())])


def _warn_invisible_names(con: duckdb.DuckDBPyConnection) -> None:
    """Event names with zero-width, bidi or control characters print like other names: say so (they stay distinct)."""
    # the names first (MATERIALIZED): unfenced, the optimiser pushed the regex below the DISTINCT, onto every row
    rows = con.execute("""WITH names AS MATERIALIZED (SELECT DISTINCT event_name AS name FROM staged_events WHERE reason IS NULL)
                          SELECT name, count(*) OVER () FROM names WHERE regexp_matches(name, ?) ORDER BY name LIMIT 3""",
                       [invisible_re2_class()]).fetchall()
    if rows:
        log.warning("%d event names hold invisible characters (zero-width, bidi or control), e.g. %s; they are "
                    "distinct states, shown with \\uXXXX escapes", rows[0][1], ", ".join(show_name(r[0]) for r in rows))


def _stats(con: duckdb.DuckDBPyConnection, source: str, files: tuple[str, ...], notes: list[str]) -> IngestStats:
    rows = con.execute("SELECT reason, count(*) FROM staged_events GROUP BY ALL ORDER BY ALL").fetchall()
    by_reason = {reason: n for reason, n in rows if reason is not None}
    if by_reason.get("bad_timestamp"):
        log.warning("%d rows quarantined as bad_timestamp: unreadable, or outside the plausible range %s to %s",
                    by_reason["bad_timestamp"], timestamps.TS_MIN, timestamps.TS_MAX)
    first, last = con.execute("SELECT min(ts), max(ts) FROM staged_events WHERE reason IS NULL").fetchall()[0]
    if timestamps.out_of_range(first, last):
        warning = (f"warning: every accepted time falls in {first:%Y-%m-%d}..{last:%Y-%m-%d} (before 2000 or after next "
                   f"year): check the time column's unit or format ({'; '.join(notes) or 'no notes'}); "
                   "set normalize.timestamp_unit (s, ms, us, ns) or normalize.timestamp_format")
        log.warning("%s", warning)
        notes.append(warning)
    return IngestStats(source=sql_sources.redact(source.split()[0]) if "://" in source else source, files=files, events_read=sum(n for _, n in rows),
                       quarantined=sum(by_reason.values()), quarantined_by_reason=by_reason, notes=tuple(notes))


# --- sources -------------------------------------------------------------------------------


def _read_source(con: duckdb.DuckDBPyConnection, source: str, cfg: Config, run_id: str,
                 notes: list[str], sources: dict[int, str]) -> tuple[str, ...]:
    """Stage every file (or the SQL rows) of `source`; `sources` gets each file index's source label."""
    text = source.strip()
    if text.lower().startswith(("duckdb://", "postgres://", "postgresql://")) or _is_sql(text):
        label, batches = sql_sources.sql_batches(text)
        sources[0] = label
        _append_batches(con, 0, label, batches)
        return (sql_sources.redact(text.split()[0]) if not _is_sql(text) else "sql",)
    files = expand(text)
    run = incremental.current(con)
    read = run.new if run is not None and run.files == files else {p: i for i, p in enumerate(files)}
    for path, index in progress.track(sorted(read.items(), key=lambda item: item[1]), total=len(read), desc="reading",
                                      unit="file"):
        sources[index] = path
        _read_file(con, index, path, cfg, run_id, notes)  # index: the file's place among all, as in a full read
    return tuple(read)


_is_sql = sql_sources.is_sql


def expand(pattern: str) -> list[str]:
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


def kind_of(path: str) -> str:
    name = path.lower()
    if name.endswith((".xes.gz", ".xes")):
        return "xes"
    kind = _EXTENSIONS.get(Path(name).suffix)
    if kind is None:
        raise IngestError(f"{path}: unknown file type; use .jsonl, .json, .ndjson, .csv, .tsv, .parquet, .xes or .xes.gz")
    return kind


def _read_file(con: duckdb.DuckDBPyConnection, index: int, path: str, cfg: Config, run_id: str,
               notes: list[str]) -> None:
    kind = kind_of(path)
    try:
        if kind == "xes":
            notes.append(f"{Path(path).name}: {formats.XES_NOTE}")
            _append_batches(con, index, path, xes.iter_batches(path))
            return
        _check_readable(path)
        reading = reading_for(path, kind, cfg, notes)
        if reading.nested:
            _stage_nested(con, index, path, reading, run_id)
        elif kind == "jsonl" and path.lower().endswith(".json") and _is_json_array(path):
            _stage_array(con, index, path, reading, run_id)
        elif kind == "jsonl":
            _stage_lines(con, index, path, reading, run_id)
        elif kind == "csv":
            _stage_csv(con, index, path, reading, run_id)
        else:
            _stage_parquet(con, index, path, reading, run_id)
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read as {kind} ({str(exc).splitlines()[0]}); check the file's format") from exc


def reading_for(path: str, kind: str, cfg: Config, notes: list[str] | None = None) -> Reading:
    """How to read `path`: the shape detected from a sample, overridden by the config's renames and time settings."""
    rows, nested = formats.sample_rows(path, kind)
    found = formats.detect(rows, nested)
    reading = found or Reading()
    norm = cfg.normalize
    if norm.fields:
        renames = {name: (src,) if isinstance(src, str) else tuple(src) for name, src in norm.fields}
        reading = replace(reading, sources={**reading.sources, **renames}, label=f"{reading.label}, renamed by normalize.fields")
    unit = norm.timestamp_unit if norm.timestamp_unit != "auto" else reading.unit
    if norm.fields and norm.timestamp_unit == "auto":  # the renamed time column decides its own unit
        unit = timestamps.unit_of(formats.lookup(r, reading.sources["timestamp"][0]) for r in rows) or "auto"
    reading = replace(reading, unit=unit, fmt=norm.timestamp_format or reading.fmt)
    if notes is not None:
        notes.append(f"{Path(path).name}: {reading.describe()}" if found or norm.fields else
                     f"{Path(path).name}: columns not recognised ({', '.join(sorted({k for r in rows for k in r})[:12]) or 'none'});"
                     " name them with normalize.fields (see docs/your-data.md) or try `journeygraph inspect`")
    return reading


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
    return f"""SELECT {int(index)} AS file_index, {sql_string(path)} AS source, line, raw FROM (
                 SELECT generate_subscripts(items, 1) AS line, unnest(items) AS raw
                 FROM (SELECT {items} AS items FROM read_text({sql_string(path)})))
               WHERE {_BLANK.format(tail="chr(13)")}"""


def _stage_lines(con: duckdb.DuckDBPyConnection, index: int, path: str, reading: Reading, run_id: str) -> None:
    """Stage a JSONL file block by block, straight from its bytes (`engine.jsonl_lines`), on every DuckDB thread.

    A file that is not UTF-8 (DuckDB does not check Arrow strings, and a bad byte is a fatal error in its
    string functions) or fails midway has its rows dropped and goes to `read_text`, which gives the rows,
    or the error, it always gave.
    """
    tail = "chr(13) || chr(10)"
    relation = f"""(SELECT {int(index)} AS file_index, {sql_string(path)} AS source, line, raw FROM {_ARROW}
                    WHERE {_BLANK.format(tail=tail)})"""
    bad: list[tuple[int, str]] = []
    try:
        for table in line_tables(path, bad):
            con.register(_ARROW, table)
            try:
                _stage_docs(con, reading, run_id, relation, tail)
            finally:
                con.unregister(_ARROW)
        _stage_bad_encoding(con, index, path, run_id, bad)
    except (pa.ArrowInvalid, OSError):
        con.execute("DELETE FROM staged_events WHERE file_index = ?", [index])
        _stage_array(con, index, path, reading, run_id)


def _stage_array(con: duckdb.DuckDBPyConnection, index: int, path: str, reading: Reading, run_id: str) -> None:
    """A file read whole by `read_text` (a .json array, or lines that are not UTF-8), staged with its own reading."""
    con.execute(f"INSERT INTO {_RAW} {_jsonl_sql(index, path)}")
    _stage_docs(con, reading, run_id, f"(SELECT * FROM {_RAW} WHERE file_index = {int(index)})", "chr(13)")
    con.execute(f"DELETE FROM {_RAW} WHERE file_index = ?", [index])


def _stage_nested(con: duckdb.DuckDBPyConnection, index: int, path: str, reading: Reading, run_id: str) -> None:
    """One line per session holding a list of events (`reading.nested`): one row per event, numbered in file order.

    `line` is the event's ordinal in the file (input order must be unique); a line that is not a JSON session
    becomes one row of its own (quarantined as not_json).
    """
    relation = f"""(SELECT {int(index)} AS file_index, {sql_string(path)} AS source, line, raw FROM {_ARROW})"""
    for table in formats.nested_tables(path, str(reading.nested), _CHUNK_ROWS):
        con.register(_ARROW, table)
        try:
            _stage_docs(con, reading, run_id, relation, "chr(13)")
        finally:
            con.unregister(_ARROW)


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


# --- parsing --------------------------------------------------------------------------------






def cfg_reading(cfg: Config) -> Reading:
    """The reading of sources with no sample (XES, SQL): journeygraph's names after `normalize.fields`, the config's units."""
    norm = cfg.normalize
    renames = {name: (src,) if isinstance(src, str) else tuple(src) for name, src in norm.fields}
    base = Reading()
    return replace(base, sources={**base.sources, **renames}, unit=norm.timestamp_unit, fmt=norm.timestamp_format)


def _stage(con: duckdb.DuckDBPyConnection, cfg: Config, run_id: str) -> None:
    """Stage the JSON documents of `_RAW` (XES, SQL sources): parse, extract, type, give reasons."""
    if con.execute(f"SELECT count(*) FROM (SELECT 1 FROM {_RAW} LIMIT 1)").fetchall()[0][0]:
        _stage_docs(con, cfg_reading(cfg), run_id, _RAW, "chr(13)")










def _stage_docs(con: duckdb.DuckDBPyConnection, reading: Reading, run_id: str, relation: str, tail: str) -> None:
    """Stage rows (file_index, source, line, raw) of `relation`, one JSON document each.

    `tail` (SQL) is the set of characters a raw text may end with that are not part of the line: trimmed
    from quarantined raw text, and whitespace to JSON. Whitespace-only lines are not events: the readers
    leave them out (`_BLANK`); a filter on `ok` here was pushed below the projections and ran every
    line's json_keys twice (measured: a third of this statement's CPU). If the count of consumed keys with a
    value equals the line's number of keys, every key is a consumed one, so the unknown-field object is {}
    without rewriting the line; a null or repeated key only sends the line down the exact merge-patch path.
    """
    keys = top_keys(reading)
    spec = json.dumps(keys)
    known_nulls = json.dumps({key: None for key in keys})
    f = {name: coalesced(name, [doc_expr(name, src) for src in reading.sources.get(name, ())]) for name in FIELDS}
    present = " + ".join(f"(s.{ident(key)} IS NOT NULL)::INTEGER" for key in sorted(keys)) or "0"
    fields = f"""
        parsed AS (
          SELECT file_index, source, line, raw, (raw[1] = '{{' OR ltrim(raw)[1] = '{{') AND json_valid(raw) AS valid
          FROM {relation}),
        typed AS (SELECT *, CASE WHEN valid THEN json_transform(raw, {sql_string(spec)}) END AS s FROM parsed),
        extra AS (   -- unknown top-level fields; the merge patch (a slow rewrite) only for lines that have some
          SELECT *, CASE WHEN valid THEN
                      CASE WHEN len(json_keys(raw)) = {present} THEN '{{}}'::JSON
                           ELSE try(json_merge_patch(raw, {sql_string(known_nulls)})) END END AS extras
          FROM typed),
        checked AS (SELECT * REPLACE (CASE WHEN extras IS NOT NULL THEN s END AS s), extras IS NOT NULL AS ok FROM extra),
        fields AS (SELECT file_index, source, line, raw, ok, extras, {field_columns(f)} FROM checked)"""
    con.execute(f"INSERT INTO staged_events {staging_sql(fields, run_id, f'rtrim(raw, {tail})', reading)}")






# --- typed tables (Parquet, CSV): columns read as they are, no JSON round trip ---------------


def _stage_parquet(con: duckdb.DuckDBPyConnection, index: int, path: str, reading: Reading, run_id: str) -> None:
    """Parquet rows straight from their columns; line = the row's position in the file (1-based), exact in parallel."""
    reader = f"read_parquet({sql_string(path)}, file_row_number = true)"
    raw = """CAST(json_merge_patch(to_json(_jg_row), '{"file_row_number": null}') AS VARCHAR)"""
    _stage_typed(con, index, path, reader, "t.file_row_number + 1", raw, reading, run_id, hidden=("file_row_number",))


def _stage_csv(con: duckdb.DuckDBPyConnection, index: int, path: str, reading: Reading, run_id: str) -> None:
    """CSV rows, every column as text; line = row number + 1 (the header line), so file order must be kept."""
    reader = f"(SELECT row_number() OVER () + 1 AS _jg_line, * FROM read_csv({sql_string(path)}, all_varchar=true, header=true))"
    con.execute("SET preserve_insertion_order = true")  # row_number() OVER () follows the file only in order
    try:
        _stage_typed(con, index, path, reader, "t._jg_line", "to_json(_jg_row)::VARCHAR", reading, run_id,
                     hidden=("_jg_line",), row=True)
    finally:
        con.execute("SET preserve_insertion_order = false")


def _stage_typed(con: duckdb.DuckDBPyConnection, index: int, path: str, reader: str, line: str, raw: str,
                 reading: Reading, run_id: str, hidden: tuple[str, ...] = (), row: bool = False) -> None:
    """Stage a typed table with the same rules (and results) as its rows' JSON documents would get.

    A known field of type VARCHAR is used as is; any other type goes through its JSON text, as
    `json_transform(…, 'VARCHAR')` would see it. Column names match field keys case-sensitively, like
    JSON keys. Unknown columns become `extras` exactly as the JSON pass's merge patch would build them.
    A dotted source reads a path inside an object column, or inside a text column holding JSON (PostHog CSV).
    """
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {reader} t").fetchall()
    except duckdb.Error as exc:
        raise IngestError(f"{path}: cannot be read ({str(exc).splitlines()[0]}); check the file's format") from exc
    types = {name: kind for name, kind, *_ in described if name not in hidden}
    f = {name: coalesced(name, [typed_expr(name, src, types) for src in reading.sources.get(name, ())]) for name in FIELDS}
    used = {src for name in FIELDS for src in reading.sources.get(name, ()) if src in types}
    unknown = [c for c in types if c not in used]
    extras = ("'{}'::JSON" if not unknown else
              "json_merge_patch(to_json({" + ", ".join(f"{sql_string(c)}: t.{ident(c)}" for c in unknown) + "}), '{}')")
    row_struct = (f"{{{', '.join(f'{sql_string(c)}: t.{ident(c)}' for c in types)}}}" if row else "t")
    fields = f"""fields AS (
          SELECT {int(index)} AS file_index, {sql_string(path)} AS source, {line} AS line, true AS ok,
                 {extras} AS extras, {row_struct} AS _jg_row, {field_columns(f)}
          FROM {reader} t)"""
    con.execute(f"INSERT INTO staged_events {staging_sql(fields, run_id, raw, reading)}")








def _write_quarantine(con: duckdb.DuckDBPyConnection, run_id: str) -> None:
    con.execute("CREATE TABLE IF NOT EXISTS quarantine (run_id VARCHAR, source VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR)")
    run = incremental.current(con)  # an incremental run keeps the rows of the files it did not read again
    read = run.new if run is not None and run.incremental else None
    if read is None:
        con.execute("DELETE FROM quarantine WHERE run_id = ?", [run_id])
    else:
        con.execute("DELETE FROM quarantine WHERE run_id = ? AND list_contains(?, source)", [run_id, list(read)])
    con.execute("""INSERT INTO quarantine
                   SELECT run_id, source, line, reason, raw FROM staged_events
                   WHERE reason IS NOT NULL ORDER BY input_order""")
