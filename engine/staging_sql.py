"""The SQL that turns a source's rows into staged events: field expressions, timestamps, quarantine reasons.

Pure text builders (no connection) shared by every reader in engine.ingest: JSON documents (JSONL, XES,
SQL sources) and typed tables (Parquet, CSV) end in the same `staging_sql` tail, so every format is
parsed, timed and given its quarantine reason the same way.
"""

from __future__ import annotations

from engine import timestamps
from engine.formats import Reading

FIELDS = ("event_id", "user_id", "actor_id", "anonymous_id", "session_id", "event_name", "timestamp",
          "received_at", "platform", "tenant_id", "user_agent", "properties")
LINE_BITS = 40  # input_order = file_index << 40 | line: 10^12 lines per file, 8M files


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def top_keys(reading: Reading) -> dict[str, str]:
    """Top-level keys a reading consumes -> their JSON type; a dotted source is a path into an object, not a key."""
    keys: dict[str, str] = {}
    for name in FIELDS:
        for src in reading.sources.get(name, ()):
            if "." not in src:
                keys.setdefault(src, "JSON" if name == "properties" else "VARCHAR")
    return keys


def json_path(src: str) -> str:
    return "$." + ".".join('"' + part.replace('"', '\\"') + '"' for part in src.split("."))


def doc_expr(name: str, src: str) -> str:
    """A JSON document's field: a top-level key of the transformed struct `s`, or a path into the raw text."""
    if "." not in src:
        return f"s.{ident(src)}"
    return f"json_extract(raw, {sql_string(json_path(src))})" if name == "properties" else \
        f"json_extract_string(raw, {sql_string(json_path(src))})"


def coalesced(name: str, exprs: list[str]) -> str:
    null = "CAST(NULL AS JSON)" if name == "properties" else "CAST(NULL AS VARCHAR)"
    if name == "properties":
        return exprs[0] if exprs else null
    exprs = [f"nullif({e}, '')" for e in exprs]
    return exprs[0] if len(exprs) == 1 else f"coalesce({', '.join(exprs)})" if exprs else null


def field_columns(f: dict[str, str]) -> str:
    """The staged field columns from per-field source expressions (VARCHAR with '' as NULL, or JSON for properties)."""
    v = f
    return f"""{v['event_id']} AS event_id, coalesce({v['user_id']}, {v['actor_id']}) AS user_id,
               {v['anonymous_id']} AS anonymous_id, {v['session_id']} AS source_session_id,
               {v['event_name']} AS event_name, {v['timestamp']} AS ts_text, {v['received_at']} AS received_text,
               {v['platform']} AS platform, coalesce({v['tenant_id']}, '') AS tenant_id,
               {v['user_agent']} AS user_agent, {props_object_sql(f['properties'])} AS props"""


def staging_sql(fields_ctes: str, run_id: str, raw_expr: str, reading: Reading) -> str:
    """The shared tail of every staging query: timestamps, the quarantine reason, raw text only for bad rows.

    Run id and source are kept on quarantined rows only (engine.ingest.SOURCES has them per file index).

    `fields_ctes` must end in a CTE `fields` with file_index, source, line, ok, extras (JSON object of unknown
    top-level fields) and the `field_columns`; `raw_expr` rebuilds a row's source text (evaluated only
    for quarantined rows: CASE evaluates a branch only for the rows that take it).
    """
    ts = timestamps.timestamp_sql("ts_text", reading.unit, reading.fmt)
    return f"""
        WITH {fields_ctes},
        timed AS (
          SELECT *, {ts} AS ts, {given('received_text', timestamps.timestamp_sql('received_text'))} AS received_at FROM fields),
        reasoned AS (SELECT *, {reason_sql()} AS reason FROM timed)
        SELECT CASE WHEN reason IS NOT NULL THEN {sql_string(run_id)} END AS run_id,
               CASE WHEN reason IS NOT NULL THEN source END AS source, file_index, line,
               (CAST(file_index AS BIGINT) << {LINE_BITS}) | line AS input_order, reason,
               CASE WHEN reason IS NOT NULL THEN rtrim({raw_expr}, chr(13)) END AS raw,
               event_id, user_id, anonymous_id, source_session_id, event_name, ts, received_at,
               platform, tenant_id, user_agent,
               CASE WHEN extras IS NULL OR extras::VARCHAR = '{{}}' THEN coalesce(props, '{{}}'::JSON)
                    WHEN props IS NULL THEN extras
                    ELSE json_merge_patch(extras, props) END AS properties
        FROM reasoned"""


def given(col: str, sql: str) -> str:
    """`sql` (NULL for a NULL `col`) run only on the rows where `col` holds something: a time parse's list lambdas
    cost 0.2 CPU-s per 10 M rows even on a constant NULL (a source with no received time), 0.6 on a NULL column."""
    return f"CASE WHEN {col} IS NOT NULL THEN {sql} END"


def typed_expr(name: str, src: str, types: dict[str, str]) -> str:
    """A typed column as text (JSON for properties), a path inside one, or NULL when the file has no such column."""
    if src in types:
        col = f"t.{ident(src)}"
        if name == "properties":
            return f"to_json({col})"
        return col if types[src] == "VARCHAR" else f"json_extract_string(to_json({col}), '$')"
    head, _, rest = src.partition(".")
    if not rest or head not in types:
        return "CAST(NULL AS JSON)" if name == "properties" else "CAST(NULL AS VARCHAR)"
    doc = f"try_cast(t.{ident(head)} AS JSON)" if types[head] == "VARCHAR" else f"to_json(t.{ident(head)})"
    path = sql_string(json_path(rest))
    return f"json_extract({doc}, {path})" if name == "properties" else f"json_extract_string({doc}, {path})"


def props_object_sql(props: str) -> str:
    """`properties` as a JSON object: an object as is, a string holding an object decoded, anything else wrapped."""
    text = f"json_extract_string({props}, '$')"
    return f"""(CASE WHEN {props} IS NULL OR {props}::VARCHAR = 'null' THEN NULL
                 WHEN left(CAST({props} AS VARCHAR), 1) = '{{' THEN {props}
                 WHEN json_type({props}) = 'VARCHAR' AND json_valid({text}) AND json_type({text}) = 'OBJECT' THEN CAST({text} AS JSON)
                 ELSE json_object('properties', {props}) END)"""


def reason_sql() -> str:
    return """(CASE WHEN NOT ok THEN 'not_json'
                 WHEN ts_text IS NULL THEN 'missing_timestamp'
                 WHEN ts IS NULL OR NOT isfinite(ts) THEN 'bad_timestamp'
                 WHEN event_name IS NULL THEN 'missing_event_name'
                 WHEN user_id IS NULL AND anonymous_id IS NULL THEN 'missing_actor' END)"""
