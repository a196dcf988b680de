"""Reading sources: every format gives the same staged events; timestamps, line numbers, renames, quarantine."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from engine import ingest, xes
from ontology.errors import IngestError
from tests.engine.conftest import make_config, rows, write_jsonl

EVENTS = [
    {"user_id": "u1", "event_name": "sign_up", "timestamp": "2026-01-01T10:00:00+02:00", "platform": "ios", "plan": "pro"},
    {"user_id": "u1", "event_name": "feature_used", "timestamp": "2026-01-01T09:30:00Z", "platform": "ios", "plan": "pro"},
    {"user_id": "u2", "event_name": "sign_up", "timestamp": "2026-01-02T00:00:00Z", "platform": "web", "plan": "free"},
]
EXPECTED = [
    (1, "u1", "sign_up", datetime(2026, 1, 1, 8), "ios", {"plan": "pro"}),
    (2, "u1", "feature_used", datetime(2026, 1, 1, 9, 30), "ios", {"plan": "pro"}),
    (3, "u2", "sign_up", datetime(2026, 1, 2), "web", {"plan": "free"}),
]
STAGED = "SELECT line, user_id, event_name, ts, platform, properties FROM staged_events ORDER BY input_order"


def _staged(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return [(line, u, e, ts, p, json.loads(props)) for line, u, e, ts, p, props in rows(con, STAGED)]


def _csv(tmp_path: Path) -> str:
    path = tmp_path / "e.csv"
    lines = ["user_id,event_name,timestamp,platform,plan"] + [
        ",".join(str(e[k]) for k in ("user_id", "event_name", "timestamp", "platform", "plan")) for e in EVENTS]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _parquet(tmp_path: Path) -> str:
    src = write_jsonl(tmp_path / "src.jsonl", EVENTS)
    path = tmp_path / "e.parquet"
    duckdb.connect().execute(f"COPY (SELECT * FROM read_json('{src}', columns={{user_id:'VARCHAR', event_name:'VARCHAR', timestamp:'VARCHAR', platform:'VARCHAR', plan:'VARCHAR'}})) TO '{path}' (FORMAT parquet)")
    return str(path)


def _duckdb_url(tmp_path: Path) -> str:
    db = tmp_path / "app.duckdb"
    src = duckdb.connect(str(db))
    src.execute("CREATE TABLE raw_events (uid VARCHAR, event_name VARCHAR, timestamp VARCHAR, platform VARCHAR, plan VARCHAR)")
    src.executemany("INSERT INTO raw_events VALUES (?, ?, ?, ?, ?)",
                    [[e["user_id"], e["event_name"], e["timestamp"], e["platform"], e["plan"]] for e in EVENTS])
    src.close()
    return f"duckdb://{db} SELECT uid AS user_id, * EXCLUDE (uid) FROM raw_events ORDER BY timestamp DESC, uid"


XES = """<?xml version="1.0" encoding="UTF-8"?>
<log xes.version="1.0" xmlns="http://www.xes-standard.org/">
  <global scope="event"><string key="concept:name" value="__INVALID__"/></global>
  <string key="concept:name" value="a log-level name that is not a case"/>
  <trace>
    <string key="concept:name" value="u1"/>
    <event>
      <string key="concept:name" value="sign_up"/><date key="time:timestamp" value="2026-01-01T10:00:00.000+02:00"/>
      <string key="platform" value="ios"/>
    </event>
    <event>
      <string key="concept:name" value="feature_used"/><date key="time:timestamp" value="2026-01-01T09:30:00.000+00:00"/>
      <string key="platform" value="ios"/>
    </event>
    <string key="plan" value="pro"/>
  </trace>
  <trace>
    <string key="concept:name" value="u2"/><string key="plan" value="free"/>
    <event>
      <string key="concept:name" value="sign_up"/><date key="time:timestamp" value="2026-01-02T00:00:00.000Z"/>
      <string key="platform" value="web"/>
    </event>
  </trace>
</log>
"""


def _xes(tmp_path: Path) -> str:
    path = tmp_path / "e.xes.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(XES)
    return str(path)


SOURCES = {
    "jsonl": lambda p: str(write_jsonl(p / "e.jsonl", EVENTS)),
    "csv": _csv,
    "parquet": _parquet,
    "xes_gz": _xes,
    "duckdb_url": _duckdb_url,
}


@pytest.mark.parametrize("kind", list(SOURCES), ids=list(SOURCES))
def test_every_format_stages_the_same_events(con, tmp_path, kind) -> None:
    source = SOURCES[kind](tmp_path)
    stats = ingest.load(con, source, make_config(), "r1")
    assert (stats.events_read, stats.quarantined) == (3, 0)
    got = sorted(_staged(con), key=lambda r: (r[1], r[3]))
    expected = sorted(EXPECTED, key=lambda r: (r[1], r[3]))
    if kind.startswith("xes"):  # XES has no platform field: every non-standard attribute is a property
        expected = [(n, u, e, ts, None, {**props, "platform": p}) for n, u, e, ts, p, props in expected]
    assert [r[1:] for r in got] == [r[1:] for r in expected]
    # lines are file lines (CSV counts its header line) or row/event positions, in input order
    first = 2 if kind == "csv" else 1
    assert [line for (line,) in rows(con, "SELECT line FROM staged_events ORDER BY input_order")] == [first, first + 1, first + 2]


def test_line_numbers_follow_the_file_and_globs_fold_file_index_into_input_order(con, tmp_path) -> None:
    write_jsonl(tmp_path / "a.jsonl", EVENTS[:2])
    write_jsonl(tmp_path / "b.jsonl", ["", EVENTS[2]])
    stats = ingest.load(con, str(tmp_path / "*.jsonl"), make_config(), "r1")
    assert stats.files == (str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"))
    assert rows(con, "SELECT file_index, line, input_order FROM staged_events ORDER BY input_order") == [
        (0, 1, 1), (0, 2, 2), (1, 2, (1 << ingest.LINE_BITS) | 2)]


@pytest.mark.parametrize(("value", "expected"), [
    ("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12)),
    ("2026-03-01T12:00:00+05:30", datetime(2026, 3, 1, 6, 30)),
    ("2026-03-01T12:00:00.250-08:00", datetime(2026, 3, 1, 20, 0, 0, 250000)),
    ("2026-03-01 12:00:00", datetime(2026, 3, 1, 12)),
    (1772366400000, datetime(2026, 3, 1, 12)),
    ("1772366400000", datetime(2026, 3, 1, 12)),
    (1772366400123.0, datetime(2026, 3, 1, 12, 0, 0, 123000)),
    ("yesterday", None), ("2026-02-30T00:00:00Z", None), ("", "missing"), (None, "missing"), ("1e400", None),
], ids=["zulu", "plus_offset", "minus_offset_ms", "no_offset_is_utc", "epoch_ms", "epoch_ms_string", "epoch_float",
        "words", "no_such_day", "empty", "null", "huge"])
def test_timestamps_become_utc(con, tmp_path, value, expected) -> None:
    write_jsonl(tmp_path / "e.jsonl", [{"user_id": "u", "event_name": "x", "timestamp": value}])
    ingest.load(con, str(tmp_path / "e.jsonl"), make_config(), "r1")
    ts, reason = rows(con, "SELECT ts, reason FROM staged_events")[0]
    if expected == "missing":
        assert reason == "missing_timestamp"
    elif expected is None:
        assert reason == "bad_timestamp"
    else:
        assert (ts, reason) == (expected, None)


def test_quarantine_reasons_lines_and_raw_text(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        {"user_id": "u", "event_name": "ok", "timestamp": "2026-01-01T00:00:00Z"},
        '{"user_id": "u", "event_na',
        "   ",
        "[1, 2]",
        {"anonymous_id": "a", "event_name": "", "timestamp": "2026-01-01T00:00:00Z"},
        {"event_name": "x", "timestamp": "2026-01-01T00:00:00Z", "properties": {"user_id": "not-top-level"}},
    ])
    stats = ingest.load(con, str(path), make_config(), "run-7")
    assert stats.events_read == 5  # the whitespace-only line is not an event
    assert stats.quarantined_by_reason == {"not_json": 2, "missing_event_name": 1, "missing_actor": 1}
    assert rows(con, "SELECT run_id, line, reason, raw FROM quarantine ORDER BY line")[:2] == [
        ("run-7", 2, "not_json", '{"user_id": "u", "event_na'), ("run-7", 4, "not_json", "[1, 2]")]


def test_unknown_top_level_fields_merge_into_properties(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        {"user_id": "u", "event_name": "x", "timestamp": "2026-01-01T00:00:00Z", "plan": "pro", "n": 3,
         "properties": {"feature": "editor", "plan": "team"}},
        {"user_id": "u", "event_name": "y", "timestamp": "2026-01-01T00:00:00Z", "properties": '{"encoded": true}'},
    ])
    ingest.load(con, str(path), make_config(), "r1")
    props = [json.loads(p) for (p,) in rows(con, "SELECT properties FROM staged_events ORDER BY line")]
    assert props == [{"plan": "team", "n": 3, "feature": "editor"}, {"encoded": True}]


def test_field_renames_from_config(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [{"case": "c-1", "activity": "A_SUBMITTED", "at": 1772366400000, "who": "112"}])
    cfg = make_config(normalize={"fields": {"actor_id": "case", "event_name": "activity", "timestamp": "at"}})
    ingest.load(con, str(path), cfg, "r1")
    assert rows(con, "SELECT user_id, event_name, ts, properties FROM staged_events") == [
        ("c-1", "A_SUBMITTED", datetime(2026, 3, 1, 12), '{"who":"112"}')]


def test_crlf_lines_parse(con, tmp_path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(b'{"user_id":"u","event_name":"a","timestamp":"2026-01-01T00:00:00Z"}\r\nnot json\r\n')
    stats = ingest.load(con, str(path), make_config(), "r1")
    assert (stats.events_read, stats.quarantined) == (2, 1)
    assert rows(con, "SELECT raw FROM quarantine") == [("not json",)]


def test_xes_properties_keep_trace_attributes_and_sanitise_keys(tmp_path) -> None:
    path = tmp_path / "l.xes"
    path.write_text(XES.replace('<string key="platform" value="ios"/>', '<string key="org:resource" value="112"/><int key="n" value="4"/>', 1))
    first = json.loads(next(xes.iter_events(path)))
    assert first == {"actor_id": "u1", "event_name": "sign_up", "timestamp": "2026-01-01T10:00:00.000+02:00",
                     "properties": {"plan": "pro", "org_resource": "112", "n": 4}}


@pytest.mark.parametrize(("source", "message"), [
    ("{tmp}/missing.jsonl", "no such file"),
    ("{tmp}/*.nothing", "no such file"),
    ("{tmp}/e.txt", "unknown file type"),
    ("duckdb://{tmp}/none.duckdb SELECT 1", "no DuckDB file"),
    ("duckdb://{tmp}/e.txt", "needs a query"),
    ("{tmp}/broken.xes", "not a readable XES log"),
], ids=["missing", "empty_glob", "extension", "duckdb_missing", "duckdb_no_query", "broken_xes"])
def test_unreadable_sources_raise_ingest_error(con, tmp_path, source, message) -> None:
    (tmp_path / "e.txt").write_text("x")
    (tmp_path / "broken.xes").write_text("<log><trace><event>")
    with pytest.raises(IngestError, match=message):
        ingest.load(con, source.format(tmp=tmp_path), make_config(), "r1")


@pytest.fixture(scope="module")
def postgres_url():
    """A real, throwaway PostgreSQL server on a Unix socket (skips when the binaries or a non-root user are missing)."""
    import glob
    import os
    import pwd
    import shutil
    import socket
    import subprocess
    import tempfile

    # Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin.
    search = os.pathsep.join([os.environ.get("PATH", ""), *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)])
    initdb, pg_ctl = shutil.which("initdb", path=search), shutil.which("pg_ctl", path=search)
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser to drop privileges")
        prefix = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="jg-pg-"))
    base.chmod(0o777)
    if prefix:
        os.chown(base, user.pw_uid, user.pw_gid)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data, log = base / "data", base / "server.log"
    subprocess.run(prefix + [initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    subprocess.run(prefix + [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o",
                             f"-p {port} -k {base} -c listen_addresses=''", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql:///postgres?host={base}&port={port}&user=postgres"
    finally:
        subprocess.run(prefix + [pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False, capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_query_source_reads_in_chunks(con, postgres_url, monkeypatch) -> None:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as pg:
        pg.execute("DROP TABLE IF EXISTS app_events")
        pg.execute("CREATE TABLE app_events (uid TEXT, event_name TEXT, at TIMESTAMPTZ, platform TEXT, properties JSONB)")
        with pg.cursor() as cur:
            cur.executemany("INSERT INTO app_events VALUES (%s, %s, %s, %s, %s)",
                            [(e["user_id"], e["event_name"], e["timestamp"], e["platform"], json.dumps({"plan": e["plan"]}))
                             for e in EVENTS])
    monkeypatch.setattr(ingest, "_CHUNK_ROWS", 2)  # three rows arrive in two chunks
    source = f"{postgres_url} SELECT uid AS user_id, event_name, at AS timestamp, platform, properties FROM app_events ORDER BY at"
    stats = ingest.load(con, source, make_config(), "r1")
    assert (stats.events_read, stats.quarantined) == (3, 0)
    assert sorted(r[1:] for r in _staged(con)) == sorted(r[1:] for r in EXPECTED)
    assert rows(con, "SELECT line FROM staged_events ORDER BY line") == [(1,), (2,), (3,)]


def test_postgres_errors_name_the_source_without_its_password(con, postgres_url) -> None:
    source = postgres_url.replace("postgresql:///", "postgresql://postgres:s3cret@/") + " SELECT * FROM no_such_table"
    with pytest.raises(IngestError) as err:
        ingest.load(con, source, make_config(), "r1")
    assert "no_such_table" in str(err.value) and "s3cret" not in str(err.value)


def test_a_json_file_may_hold_one_array_of_events(con, tmp_path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps(EVENTS + [{"user_id": "u3"}], indent=2))
    stats = ingest.load(con, str(path), make_config(), "r1")
    assert (stats.events_read, stats.quarantined_by_reason) == (4, {"missing_timestamp": 1})
    assert [r[:3] for r in _staged(con)][:3] == [r[:3] for r in EXPECTED]


def test_normalize_needs_staged_events_on_the_same_connection(con) -> None:
    from engine import normalize

    with pytest.raises(ValueError, match="call engine.ingest.load"):
        normalize.normalize(con, make_config())


@pytest.mark.parametrize("form", ["query_param", "bare_sql"], ids=["duckdb_url_query_param", "bare_sql_reads_files"])
def test_other_sql_source_forms(con, tmp_path, form) -> None:
    from urllib.parse import quote

    if form == "query_param":
        url, _, query = _duckdb_url(tmp_path).partition(" ")
        source = f"{url}?query={quote(query)}"
    else:
        source = f"SELECT * FROM read_json('{write_jsonl(tmp_path / 'e.jsonl', EVENTS)}')"
    stats = ingest.load(con, source, make_config(), "r1")
    assert (stats.events_read, stats.quarantined) == (3, 0)
    assert sorted(r[1:4] for r in _staged(con)) == sorted(r[1:4] for r in EXPECTED)


def test_timestamps_without_offset_are_utc_whatever_the_session_zone(con, tmp_path) -> None:
    con.execute("SET TimeZone = 'America/New_York'")
    write_jsonl(tmp_path / "e.jsonl", [{"user_id": "u", "event_name": "x", "timestamp": t}
                                       for t in ("2026-03-01 12:00:00", "2026-03-01T12:00:00+05:30")])
    ingest.load(con, str(tmp_path / "e.jsonl"), make_config(), "r1")
    assert rows(con, "SELECT ts FROM staged_events ORDER BY line") == [(datetime(2026, 3, 1, 12),), (datetime(2026, 3, 1, 6, 30),)]
    assert rows(con, "SELECT current_setting('TimeZone')") == [("America/New_York",)]


def test_typed_parquet_and_csv_columns_stage_exactly_like_their_json_documents(con, tmp_path) -> None:
    """The typed fast path must give the rows the JSON route gives the same rows (raw text of bad rows included)."""
    table = tmp_path / "t.duckdb"
    src = duckdb.connect(str(table))
    src.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
        ('e1', 'u1', 'sign_up', '2026-01-01T10:00:00+02:00', TIMESTAMP '2026-01-01 08:00:05', 3, 1.5, {'plan': 'pro'}),
        ('e2', 'u1', 'feature_used', '1772366400000', NULL, NULL, 2.0, {'plan': NULL}),
        ('e3', NULL, 'sign_up', '2026-01-02T00:00:00Z', NULL, 7, NULL, NULL),
        ('e4', 'u2', '', 'yesterday', NULL, NULL, NULL, {'plan': 'free'}),
        ('', 'u3', 'x', '', NULL, 1, 0.25, {'plan': 'team'})
    ) v(event_id, user_id, event_name, "timestamp", received_at, n, score, properties)""")
    src.execute(f"COPY t TO '{tmp_path / 'e.parquet'}' (FORMAT parquet)")
    src.execute(f"COPY (SELECT to_json(t)::VARCHAR AS line FROM t) TO '{tmp_path / 'e.jsonl'}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '')")
    src.execute(f"COPY (SELECT * EXCLUDE (properties) FROM t) TO '{tmp_path / 'e.csv'}' (FORMAT csv, HEADER true)")
    csv_docs = f"SELECT to_json(r)::VARCHAR FROM read_csv('{tmp_path / 'e.csv'}', all_varchar=true, header=true) r"
    src.execute(f"COPY ({csv_docs}) TO '{tmp_path / 'csv.jsonl'}' (FORMAT csv, HEADER false, QUOTE '', ESCAPE '')")
    src.close()
    cols = "line, reason, raw, event_id, user_id, event_name, ts, received_at, properties"

    def staged(path: str, first_line: int = 1) -> list[tuple]:
        stats = ingest.load(con, path, make_config(), "r1")
        assert stats.events_read == 5
        return [(line - first_line, *rest) for line, *rest in rows(con, f"SELECT {cols} FROM staged_events ORDER BY line")]

    parquet, jsonl = staged(str(tmp_path / "e.parquet")), staged(str(tmp_path / "e.jsonl"))
    assert parquet == jsonl
    assert [r[1] for r in parquet] == [None, None, "missing_actor", "bad_timestamp", "missing_timestamp"]
    # CSV: every column is text (an empty field is NULL): the same rows as its rows' JSON documents (line 1 is the header)
    csv_rows = [r for r in staged(str(tmp_path / "e.csv"), first_line=2)]
    assert csv_rows == staged(str(tmp_path / "csv.jsonl"))


def test_received_time_is_parsed_where_given_and_null_elsewhere(con, tmp_path) -> None:
    """The received-time parse runs only on rows that have one (staging_sql.given): each row keeps its own value,
    in a file that has the field on some rows and in one that has no such field at all."""
    base = {"user_id": "u", "event_name": "x", "timestamp": "2026-03-01T12:00:00Z"}
    given = [{**base, "received_at": "2026-03-01T12:00:05Z"}, base, {**base, "received_at": 1772366406000},
             {**base, "received_at": "soon"}, {**base, "received_at": None}, {**base, "received_at": "2026-03-01T13:00:00+01:00"},
             {"user_id": "u", "event_name": "x", "received_at": "2026-03-01T12:00:07Z"}]  # no event time: quarantined
    write_jsonl(tmp_path / "some.jsonl", given)
    ingest.load(con, str(tmp_path / "some.jsonl"), make_config(), "r1")
    assert rows(con, "SELECT received_at, reason FROM staged_events ORDER BY line") == [
        (datetime(2026, 3, 1, 12, 0, 5), None), (None, None), (datetime(2026, 3, 1, 12, 0, 6), None), (None, None),
        (None, None), (datetime(2026, 3, 1, 12), None), (datetime(2026, 3, 1, 12, 0, 7), "missing_timestamp")]
    write_jsonl(tmp_path / "none.jsonl", [base, base])
    ingest.load(con, str(tmp_path / "none.jsonl"), make_config(), "r1")
    assert rows(con, "SELECT received_at, ts FROM staged_events ORDER BY line") == [(None, datetime(2026, 3, 1, 12))] * 2
