"""Recognise who exported a file from its columns, and map it onto journeygraph's event fields.

Each known shape maps the vendor's own fields onto the canonical event
(DESIGN.md "Events in"): actor (`user_id`), anonymous id, event id (the
vendor's dedup key), name, time and properties. A source is a column name, a
dotted path into a JSON object column (`properties.time`), or a list of them
tried in order (the first non-empty wins). Columns a shape does not use are
kept in `properties`, as for any file. The field names come from each
vendor's public documentation:

* Segment Spec / RudderStack: `type`, `event`, `userId`, `anonymousId`, `messageId`, `timestamp`,
  `receivedAt`, `properties`, `context` (page/screen calls have a `name`, identify calls neither);
* Snowplow canonical: `event_id`, `domain_userid`, `user_id`, `derived_tstamp`/`collector_tstamp`;
* PostHog: `uuid`, `event`, `distinct_id`, `timestamp`, `properties` (an object, or JSON text in CSV);
* Amplitude Export API: `user_id`, `device_id`, `event_type`, `event_time`, `insert_id`, `event_properties`;
* Mixpanel raw export: `event` and `properties` holding `time` (epoch seconds), `distinct_id`, `$insert_id`;
* GA4 / Firebase BigQuery export: `event_name`, `event_timestamp` (epoch microseconds), `user_pseudo_id`, `user_id`;
* pm4py / XES column CSVs: `case:concept:name`, `concept:name`, `time:timestamp`;
* anything else with sensible names (`uid`, `user`, `action`, `event`, `time`, `ts`, `date`, …).

Detection reads a sample of rows (`sample_rows`), never the whole file; the
epoch unit of the time column and a day-first date format are decided from
the same sample (`engine.timestamps`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from engine import timestamps

SAMPLE_ROWS = 500
XES_NOTE = ("XES event log (user_id<-trace concept:name, event_name<-concept:name, timestamp<-time:timestamp; "
            "other attributes in properties)")
Sources = dict[str, tuple[str, ...]]
CANONICAL = ("event_id", "user_id", "actor_id", "anonymous_id", "session_id", "event_name", "timestamp",
             "received_at", "platform", "tenant_id", "user_agent", "properties")


@dataclass(frozen=True)
class Reading:
    """How to read one file: field -> candidate sources, the epoch unit and date format of its time column."""

    shape: str = "journeygraph"
    label: str = "journeygraph events"
    sources: Sources = field(default_factory=lambda: {name: (name,) for name in CANONICAL})
    unit: str = "auto"
    fmt: str | None = None
    nested: str | None = None  # the key of a per-line list of events (one line per session)

    @property
    def time_column(self) -> str:
        return " or ".join(self.sources.get("timestamp", ("timestamp",)))

    def describe(self) -> str:
        """One line for the run summary: the shape, what maps onto what, and the time column's reading."""
        pairs = [f"{name}<-{'|'.join(src)}" for name, src in sorted(self.sources.items())
                 if src != (name,) and name != "properties"]
        mapping = f" ({', '.join(pairs)})" if pairs else ""
        when = f"format {self.fmt}" if self.fmt else f"epoch {timestamps.UNIT_WORDS[self.unit]} if numeric"
        nested = f", one line per session with a list `{self.nested}`" if self.nested else ""
        return f"{self.label}{mapping}{nested}; times in {self.time_column}: {when}"


def explicit_fields(reading: Reading) -> tuple[tuple[str, str | tuple[str, ...]], ...]:
    """The reading's renames as `normalize.fields` entries: only the fields not read from their own name."""
    out: list[tuple[str, str | tuple[str, ...]]] = []
    for name in CANONICAL:
        src = reading.sources.get(name)
        if src and src != (name,) and name != "actor_id":
            out.append((name, src[0] if len(src) == 1 else src))
    return tuple(sorted(out))


def _shape(shape: str, label: str, **sources: str | tuple[str, ...]) -> tuple[str, str, Sources]:
    mapped = {name: ((src,) if isinstance(src, str) else src) for name, src in sources.items()}
    return shape, label, {**{name: (name,) for name in CANONICAL if name not in ("actor_id",)}, **mapped}


def _has(keys: set[str], *names: str) -> bool:
    return all(n in keys for n in names)


_SEGMENT: dict[str, str | tuple[str, ...]] = {
    "user_id": "userId", "anonymous_id": "anonymousId", "event_id": "messageId", "event_name": ("event", "name", "type"),
    "timestamp": ("timestamp", "originalTimestamp"), "received_at": "receivedAt"}
_RULES: tuple[tuple[Callable[[set[str], dict[str, Any]], bool], Callable[[set[str]], tuple[str, str, Sources]]], ...] = (
    (lambda k, p: _has(k, "type", "rudderId"),
     lambda k: _shape("rudderstack", "RudderStack events (Segment Spec)", **_SEGMENT)),
    (lambda k, p: _has(k, "type", "messageId") or _has(k, "type", "anonymousId") or _has(k, "type", "userId"),
     lambda k: _shape("segment", "Segment Spec events", **_SEGMENT)),
    (lambda k, p: _has(k, "event_id", "collector_tstamp"),
     lambda k: _shape("snowplow", "Snowplow canonical events", anonymous_id="domain_userid", session_id="domain_sessionid",
                      event_name=("event_name", "se_action", "event"), timestamp=("derived_tstamp", "collector_tstamp"),
                      platform="platform", user_agent="useragent")),
    (lambda k, p: _has(k, "event", "properties") and "time" in p and "timestamp" not in k,
     lambda k: _shape("mixpanel", "Mixpanel raw export", event_name="event", timestamp="properties.time",
                      user_id=("properties.$user_id", "properties.distinct_id"), anonymous_id="properties.$device_id",
                      event_id="properties.$insert_id")),
    (lambda k, p: "event_type" in k and ("event_time" in k or "insert_id" in k),
     lambda k: _shape("amplitude", "Amplitude Export API rows", anonymous_id="device_id", event_id=("insert_id", "uuid"),
                      event_name="event_type", timestamp=("event_time", "client_event_time"), properties="event_properties")),
    (lambda k, p: _has(k, "event", "distinct_id") and ("uuid" in k or "timestamp" in k),
     lambda k: _shape("posthog", "PostHog events", event_id="uuid", event_name="event", user_id=("person_id", "distinct_id")
                      if "person_id" in k else "distinct_id")),
    (lambda k, p: _has(k, "event_name", "event_timestamp"),
     lambda k: _shape("ga4", "GA4 / Firebase BigQuery export", timestamp="event_timestamp", anonymous_id="user_pseudo_id")),
    (lambda k, p: _has(k, "case:concept:name", "concept:name"),
     lambda k: _shape("pm4py", "process-mining CSV (pm4py/XES column names)", user_id="case:concept:name",
                      event_name="concept:name", timestamp="time:timestamp")),
)

_ACTOR = ("user_id", "userid", "user", "uid", "actor_id", "actor", "customer_id", "customer", "client_id", "account_id",
          "visitor_id", "person_id", "distinct_id", "member_id", "case_id", "case", "session_id", "session", "sessionid",
          "device_id", "anonymous_id", "id")
_NAME = ("event_name", "event", "eventname", "action", "event_type", "activity", "event_action", "step", "page", "name", "type")
_EVENT_ID = ("event_id", "$insert_id", "insert_id", "message_id", "messageid", "event_uuid", "uuid")
_TIME = ("timestamp", "time", "ts", "datetime", "date_time", "event_time", "eventtime", "time_stamp", "created_at",
         "occurred_at", "happened_at", "event_date", "date", "created", "t")


def _pick(keys: set[str], candidates: tuple[str, ...], taken: set[str]) -> str | None:
    lowered = {k.lower().replace(" ", "_").replace("-", "_"): k for k in sorted(keys) if k not in taken}
    return next((lowered[c] for c in candidates if c in lowered), None)


def _plain(keys: set[str]) -> tuple[str, str, Sources] | None:
    taken: set[str] = set()
    picks = {}
    for name, candidates in (("timestamp", _TIME), ("event_name", _NAME), ("user_id", _ACTOR)):
        found = _pick(keys, candidates, taken)
        if found is None:
            return None
        picks[name] = found
        taken.add(found)
    canonical = all(picks[n] == n for n in ("timestamp", "event_name")) and picks["user_id"] in ("user_id", "actor_id", "anonymous_id")
    if canonical:
        return "journeygraph", "journeygraph events", {name: (name,) for name in CANONICAL}
    event_id = _pick(keys, _EVENT_ID, taken)
    return _shape("plain", "plain event table", **picks, **({"event_id": event_id} if event_id else {}))


def detect(rows: list[dict[str, Any]], nested: str | None = None) -> Reading | None:
    """The reading for a sample of rows (parsed objects); None when no shape has an actor, a name and a time."""
    if not rows:
        return None
    keys: set[str] = set().union(*(r.keys() for r in rows))
    props: dict[str, Any] = next((r["properties"] for r in rows if isinstance(r.get("properties"), dict)), {})
    found = next((make(keys) for test, make in _RULES if test(keys, props)), None) or _plain(keys)
    if found is None:
        return None
    shape, label, sources = found
    values = [_value(r, sources["timestamp"]) for r in rows]
    return Reading(shape=shape, label=label, sources=sources, unit=timestamps.unit_of(values) or "auto",
                   fmt=timestamps.format_of(values), nested=nested)


def _value(row: Mapping[str, Any], sources: tuple[str, ...]) -> Any:
    for src in sources:
        value = lookup(row, src)
        if value not in (None, ""):
            return value
    return None


def lookup(row: Mapping[str, Any], src: str) -> Any:
    """A column, or a dotted path into an object (or JSON text) column."""
    if src in row or "." not in src:
        return row.get(src)
    head, _, rest = src.partition(".")
    inner = row.get(head)
    if isinstance(inner, str):
        try:
            inner = json.loads(inner)
        except ValueError:
            return None
    return inner.get(rest) if isinstance(inner, dict) else None


# --- samples ----------------------------------------------------------------------------------


def nested_key(doc: Mapping[str, Any]) -> str | None:
    """The key of a list of event objects when a line is a whole session (OTTO's `{"session", "events": [...]}`)."""
    lists = [k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(e, dict) for e in v)]
    return lists[0] if len(lists) == 1 and not any(k in doc for k in ("event", "event_name", "type")) else None


def flatten(doc: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    """One event per element of doc[key], each with the line's other fields."""
    parent = {k: v for k, v in doc.items() if k != key}
    return [{**parent, **event} for event in doc.get(key) or () if isinstance(event, dict)]


def sample_rows(path: str, kind: str) -> tuple[list[dict[str, Any]], str | None]:
    """Up to SAMPLE_ROWS parsed rows from the start of a file, and the nested-events key if lines are sessions."""
    if kind == "jsonl":
        return _sample_jsonl(path)
    reader = (f"read_csv('{_esc(path)}', all_varchar=true, header=true)" if kind == "csv"
              else f"read_parquet('{_esc(path)}')")
    try:
        with _sampler().cursor() as con:
            found = con.execute(f"SELECT to_json(t)::VARCHAR FROM (SELECT * FROM {reader} LIMIT {SAMPLE_ROWS}) t").fetchall()
        return [json.loads(text) for (text,) in found], None
    except duckdb.Error:
        return [], None


@functools.cache
def _sampler() -> duckdb.DuckDBPyConnection:
    """One in-memory database for every sample: opening one costs ≈ 35 ms, a cursor on it ≈ 0.5 ms, and a
    source of many files (one per day) is sampled file by file. Each sample is a cursor of its own (threads)."""
    return duckdb.connect()


def _sample_jsonl(path: str) -> tuple[list[dict[str, Any]], str | None]:
    docs: list[dict[str, Any]] = []
    with open(path, "rb") as handle:
        head = handle.read(1 << 20).decode("utf-8", "replace")
    if head.lstrip().startswith("["):
        try:
            items = json.loads(head)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
            items = []
        return [d for d in items if isinstance(d, dict)][:SAMPLE_ROWS], None
    for line in head.splitlines()[:SAMPLE_ROWS]:
        try:
            doc = json.loads(line)
        except (ValueError, RecursionError):  # a bad or absurdly nested line: the reader quarantines it
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    key = nested_key(docs[0]) if docs else None
    if key:
        docs = [event for doc in docs for event in flatten(doc, key)][:SAMPLE_ROWS]
    return docs, key


def _esc(text: str) -> str:
    return text.replace("'", "''")


def nested_tables(path: str, key: str, batch_rows: int) -> Iterator[pa.Table]:
    """(line, raw) tables of one JSON document per event for a file of sessions, `line` numbering events in file order.

    A line that is not a JSON object with the list `key` is passed on as it is (it becomes its own row).
    """
    lines: list[int] = []
    docs: list[str] = []
    ordinal = 0
    with open(path, encoding="utf-8", errors="replace") as handle:
        for text in handle:
            if not text.strip():
                continue
            try:
                doc = json.loads(text)
            except (ValueError, RecursionError):
                doc = None
            events = flatten(doc, key) if isinstance(doc, dict) and isinstance(doc.get(key), list) else None
            for raw in ([json.dumps(e, ensure_ascii=False) for e in events] if events is not None else [text.rstrip("\r\n")]):
                ordinal += 1
                lines.append(ordinal)
                docs.append(raw)
            if len(docs) >= batch_rows:
                yield pa.table({"line": pa.array(lines, pa.int64()), "raw": pa.array(docs, pa.string())})
                lines, docs = [], []
    if docs:
        yield pa.table({"line": pa.array(lines, pa.int64()), "raw": pa.array(docs, pa.string())})
