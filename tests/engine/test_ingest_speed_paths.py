"""The fast ingest paths stage exactly what the DuckDB readers staged: JSONL split by numpy into Arrow blocks
(line numbers, blank lines, CRLF, raw text, UTF-8 errors), epoch-ms edges, Parquet row numbers across row groups."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from engine import ingest, jsonl_lines
from tests.engine.conftest import make_config, rows

STAGED = "SELECT * EXCLUDE (source) FROM staged_events ORDER BY input_order"
GOOD = '{"user_id":"u%d","event_name":"e","timestamp":"2026-01-01T00:00:%02dZ"}'

# name -> file content; every variant mixes good lines with what the splitter must get exactly right
JSONL = {
    "lf": "\n".join(GOOD % (i, i) for i in range(20)) + "\n",
    "crlf": "\r\n".join(GOOD % (i, i) for i in range(20)) + "\r\n",
    "no_final_newline": "\n".join(GOOD % (i, i) for i in range(20)),
    "blank_and_cr_only_lines": "\n\n" + GOOD % (1, 1) + "\n\r\n\r\n" + GOOD % (2, 2) + "\r\n\n\n",
    "whitespace_only_lines": " \t\n" + GOOD % (1, 1) + "\n \r\n\t\n" + GOOD % (2, 2),
    "bad_lines_keep_their_text": GOOD % (1, 1) + "\r\r\n{not json  \r\n[1,2]\n  {\"a\": 1}\t\nnull\r\n\x0b\n",
    "long_line": GOOD % (1, 1) + "\n" + json.dumps({"user_id": "u", "event_name": "e", "timestamp": "2026-01-01T00:00:00Z",
                                                    "pad": "x" * 5000}) + "\n" + GOOD % (2, 2),
    "unicode": GOOD % (1, 1) + "\n" + '{"user_id":"ü","event_name":"€\U0001f600","timestamp":"2026-01-01T00:00:00Z"}\n',
    "only_blank": "\n\r\n \n",
    "empty": "",
}


def _expected_lines(text: str) -> tuple[list[int], dict[int, str]]:
    """Independent of ingest: numbers of non-blank lines, and the raw text (CR trimmed) of the bad ones."""
    numbered = [(n, line) for n, line in enumerate(text.split("\n"), start=1) if line.strip(" \t\r")]
    bad = {}
    for n, line in numbered:
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if not ok:
            bad[n] = line.rstrip("\r")
    return [n for n, _ in numbered], bad


@pytest.mark.parametrize("block", [None, 1, 7, 64], ids=["default_block", "block_1_byte", "block_7_bytes", "block_64_bytes"])
@pytest.mark.parametrize("name", list(JSONL), ids=list(JSONL))
def test_jsonl_blocks_keep_line_numbers_blank_lines_and_raw_text(con, tmp_path, monkeypatch, name, block) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes(JSONL[name].encode())
    if block:
        monkeypatch.setattr(jsonl_lines, "BLOCK_BYTES", block)
    stats = ingest.load(con, str(path), make_config(), "r1")
    lines, bad = _expected_lines(JSONL[name])
    assert [n for (n,) in rows(con, "SELECT line FROM staged_events ORDER BY line")] == lines
    assert dict(rows(con, "SELECT line, raw FROM quarantine WHERE reason = 'not_json'")) == bad
    assert stats.events_read == len(lines)


def test_jsonl_block_size_does_not_change_a_single_staged_value(con, tmp_path, monkeypatch) -> None:
    path = tmp_path / "e.jsonl"
    path.write_bytes("".join(JSONL[name] + "\n" for name in JSONL).encode())
    ingest.load(con, str(path), make_config(), "r1")
    whole = rows(con, STAGED)
    monkeypatch.setattr(jsonl_lines, "BLOCK_BYTES", 100)
    ingest.load(con, str(path), make_config(), "r1")
    assert rows(con, STAGED) == whole
    assert len(whole) > 40


@pytest.mark.parametrize("where", ["first_block", "later_block"])
def test_jsonl_lines_that_are_not_utf8_are_quarantined_alone(con, tmp_path, monkeypatch, where) -> None:
    good = "".join(GOOD % (i, i) + "\n" for i in range(50)).encode()
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\xff\n" + good if where == "first_block" else good + b"\xc3\x28\n")
    monkeypatch.setattr(jsonl_lines, "BLOCK_BYTES", 256)
    stats = ingest.load(con, str(path), make_config(), "r1")
    assert (stats.events_read, stats.quarantined_by_reason) == (51, {"bad_encoding": 1})
    assert rows(con, "SELECT line, raw FROM quarantine") == [(1 if where == "first_block" else 51, "\ufffd" if where == "first_block" else "\ufffd(")]


@pytest.mark.parametrize(("value", "expected"), [
    ("9999999999999.4", None),  # 2286: outside the plausible range (ingest.TS_MAX)
    ("-9999999999999.6", None),  # 1653: before ingest.TS_MIN
    ("7258118399999", datetime(2199, 12, 31, 23, 59, 59, 999000)),
    ("-2208988800000", datetime(1900, 1, 1)),
    ("1e13", None),
    (" 12 ", datetime(1970, 1, 1, 0, 0, 0, 12000)),
    ("1.7e12", datetime(2023, 11, 14, 22, 13, 20)),
    ("nan", None),
    ("2026-01-01 10:00:00+05:30", datetime(2026, 1, 1, 4, 30)),
], ids=["just_under_1e13", "negative_just_under", "last_plausible", "first_plausible", "1e13_is_too_far", "padded_int", "exponent", "nan", "iso_offset"])
def test_epoch_milliseconds_edges(con, tmp_path, value, expected) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text(json.dumps({"user_id": "u", "event_name": "x", "timestamp": value}) + "\n")
    ingest.load(con, str(path), make_config(normalize={"timestamp_unit": "ms"}), "r1")
    assert rows(con, "SELECT ts, reason FROM staged_events") == [(expected, None if expected else "bad_timestamp")]


# --- Parquet: row numbers and values do not depend on how the file is cut into row groups ---------------

TABLES = {
    "strings": """SELECT 'e' || i AS event_id, CASE WHEN i % 7 <> 0 THEN 'u' || (i % 5) END AS user_id,
                         CASE WHEN i % 9 <> 0 THEN 'ev' || (i % 3) END AS event_name,
                         CASE WHEN i % 11 = 0 THEN 'garbage' WHEN i % 4 = 0 THEN CAST(1767225600000 + i AS VARCHAR)
                              ELSE strftime(TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND, '%Y-%m-%dT%H:%M:%SZ') END AS "timestamp",
                         CASE WHEN i % 3 = 0 THEN {'plan': 'pro', 'n': i} END AS properties FROM range(20000) r(i)""",
    "typed_fields": """SELECT 'u' || (i % 5) AS user_id, 'ev' AS event_name,
                              CASE WHEN i % 6 <> 0 THEN TIMESTAMPTZ '2026-01-01 00:00:00+00' + INTERVAL (i) MINUTE END AS "timestamp",
                              1767225600000 + i AS received_at,
                              CASE i % 3 WHEN 0 THEN '{"a": 1}' WHEN 1 THEN 'plain' END AS properties FROM range(20000) r(i)""",
    "unknown_columns": """SELECT 'u' || (i % 5) AS user_id, CASE WHEN i % 8 <> 0 THEN 'ev' END AS event_name,
                                 TIMESTAMP '2026-01-01' + INTERVAL (i) SECOND AS "timestamp", (i / 7)::DECIMAL(12, 3) AS amount,
                                 [i, NULL] AS tags, MAP {'k': i} AS m, {'a': [{'b': i}]} AS nested, i % 2 = 0 AS flag,
                                 DATE '2026-01-01' + (i % 30)::INTEGER AS day, i::HUGEINT * 100000000000000000 AS big,
                                 CASE WHEN i % 5 = 0 THEN 'x"y' END AS "Odd Name" FROM range(20000) r(i)""",
}


def _write_parquet(tmp_path: Path, name: str, sql: str, row_group_size: int) -> str:
    path = tmp_path / f"{name}_{row_group_size}.parquet"
    duckdb.connect().execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet, ROW_GROUP_SIZE {row_group_size})")
    return str(path)


@pytest.mark.parametrize("name", list(TABLES), ids=list(TABLES))
def test_parquet_stages_the_same_rows_from_one_or_many_row_groups(con, tmp_path, name) -> None:
    ingest.load(con, _write_parquet(tmp_path, name, TABLES[name], 1_000_000), make_config(), "r1")
    one, one_quarantine = rows(con, STAGED), rows(con, "SELECT line, reason, raw FROM quarantine ORDER BY line")
    assert [line for (line,) in rows(con, "SELECT line FROM staged_events ORDER BY line")] == list(range(1, 20001))
    ingest.load(con, _write_parquet(tmp_path, name, TABLES[name], 2048), make_config(), "r1")  # DuckDB's smallest
    assert rows(con, STAGED) == one
    assert rows(con, "SELECT line, reason, raw FROM quarantine ORDER BY line") == one_quarantine
    assert len(one_quarantine) > 100
