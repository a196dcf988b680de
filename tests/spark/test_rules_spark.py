r"""The rule compiler's Spark mode selects the rows its DuckDB mode selects: a differential corpus.

Each rule runs in DuckDB (engine.rules.to_duckdb_sql) and in Spark (to_spark_sql) over the same
edge-case rows; the selected ids must be equal. The rows cover the differences a plain transpile has
(field report scale-out.md): number casts ('1.9' to INT is 2 in DuckDB, NULL in Spark's try_cast; a
double rounds half to even), LIKE escapes (DuckDB has no escape character), Unicode case mapping
(Java's special casing: 'İ', a final sigma, 'ß', ligatures), division by zero (DuckDB's inf/NaN,
Spark's ANSI abort) and JSON property access on a JSON text column. `%` and `//` by zero, and a text
property compared with a number that is not one, abort in both engines: asserted as such.
Known and left: hexadecimal ('0x10') and underscored ('1_000') integers cast to NULL on Spark.
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import pyarrow as pa
import pytest

from engine import rules

pytestmark = pytest.mark.spark

ROWS = [  # (event_name, platform, user_agent, ts, properties)
    ("sign_up", "web", "Mozilla x\\_y", "2024-01-01 10:00:00", {"n": "1.9", "d": 0, "plan": "pro", "city": "İstanbul", "a": {"b": "x"}}),
    ("sign_up", "ios", "x\\ay-bot", "2024-01-02 00:00:00", {"n": "2.5", "d": "2", "plan": "free", "city": "ΣΟΦΟΣ"}),
    ("purchase", "android", "Googlebot/2.1", "2024-01-03 12:34:56.789", {"n": "-12.5", "d": 4, "city": "straße", "flag": True}),
    ("purchase", None, None, "2024-01-04 00:00:00", {"n": 2.4, "city": "ﬁle", "u": "é"}),
    ("feature_used", "web", "100%", "2024-01-05 00:00:00", {"n": " 2 ", "city": "istanbul"}),
    ("x_y", "web", "x_y", "2024-01-06 00:00:00", {"n": "1e0", "d": 0.0}),
    ("xay", "web", "xay\\", "2024-01-07 00:00:00", {"n": "abc"}),
    ("sign_up", "web", "curl", "2024-01-08 00:00:00", {"n": None}),
    ("sign_up", "web", "HealthCheck", "2024-01-09 00:00:00", {"n": "3000000000", "plan": "team"}),
    ("purchase", "web", "ok", "2024-01-10 00:00:00", {"n": 12.5, "d": -3}),
    ("purchase", "web", "ok", "2024-01-11 00:00:00", {"n": 7, "d": 7}),
    ("purchase", "web", "ok", "2024-01-12 00:00:00", {}),
]

SAME = [
    "CAST(properties.n AS INT) = 2", "CAST(properties.n AS INT) = 3", "CAST(properties.n AS INT) = -13",
    "CAST(properties.n AS INT) = 13", "CAST(properties.n AS INT) IS NULL", "CAST(properties.n AS BIGINT) > 1000",
    "CAST(properties.n AS TINYINT) IS NOT NULL", "CAST(properties.n AS UTINYINT) IS NULL", "CAST(properties.n AS UBIGINT) > 0",
    "CAST(properties.n AS SMALLINT) = 1", "CAST(properties.n AS DOUBLE) > 2", "CAST(CAST(properties.n AS DOUBLE) AS INT) = 2",
    "CAST(CAST(properties.n AS DOUBLE) AS INT) = 12", "CAST(properties.n AS DOUBLE) / 2 > 1",
    "CAST(properties.n AS DOUBLE) / CAST(properties.d AS DOUBLE) > 1", "CAST(properties.n AS DOUBLE) / CAST(properties.d AS DOUBLE) < 0",
    "length(event_name) / 0 > 1000", "(length(event_name) - length(event_name)) / 0 > 0", "-length(event_name) / 0 < 0",
    "CAST(length(event_name) / 2 AS INT) = 4",
    r"user_agent LIKE 'x\_y%'", r"user_agent LIKE '%x\_y'", r"user_agent LIKE '%\'", "user_agent LIKE '100%'",
    "user_agent LIKE '%\\%'", "event_name LIKE 'x_y'", "user_agent ILIKE '%BOT%'", "user_agent ILIKE 'healthcheck'",
    "lower(properties.city) = 'istanbul'", "lower(properties.city) = 'σοφοσ'", "upper(properties.city) = 'STRAẞE'",
    "upper(properties.city) = 'STRASSE'", "upper(properties.city) LIKE 'ﬁ%'", "properties.city ILIKE 'STRA%'",
    "properties.plan = 'pro'", "properties.a.b = 'x'", "properties.a IS NOT NULL", "properties.flag = 'true'",
    "properties.u = 'é'", "properties.missing IS NULL", "properties.n IS NULL", "properties.d = '0.0'",
    "regexp_matches(user_agent, 'bot|crawl')", "starts_with(event_name, 'sign')", "contains(user_agent, 'bot')",
    "length(properties.city) = 6", "trim(properties.n) = '2'", "abs(CAST(properties.n AS DOUBLE)) > 10",
    "round(CAST(properties.n AS DOUBLE)) = 3", "round(CAST(properties.n AS DOUBLE), 1) = 2.4",
    "coalesce(platform, 'none') = 'none'", "event_name IN ('sign_up', 'purchase') AND platform = 'web'",
    "ts BETWEEN '2024-01-01' AND '2024-01-02 12:00:00'", "ts >= '2024-01-03 12:34:56.789'", "timestamp > '2024-01-10'",
    "CASE WHEN platform = 'web' THEN 1 ELSE 0 END = 1", "if(platform IS NULL, true, false)",
    "platform || '/' || event_name = 'web/sign_up'", "platform IS DISTINCT FROM 'web'", "NOT (platform = 'web')",
]
BOTH_ABORT = ["length(event_name) % 0 = 1", "length(event_name) // 0 = 1", "properties.n = 12"]


def _table() -> pa.Table:
    return pa.table({
        "id": list(range(len(ROWS))), "event_id": [f"e{i}" for i in range(len(ROWS))],
        "actor_id": [f"u{i % 3}" for i in range(len(ROWS))], "tenant_id": [""] * len(ROWS),
        "session_id": [f"u{i % 3}#1" for i in range(len(ROWS))],
        "event_name": [r[0] for r in ROWS], "platform": [r[1] for r in ROWS], "user_agent": [r[2] for r in ROWS],
        "ts": pa.array([datetime.fromisoformat(r[3]) for r in ROWS], pa.timestamp("us")),
        "received_at": pa.array([datetime.fromisoformat(r[3]) for r in ROWS], pa.timestamp("us")),
        "properties": [json.dumps(r[4], ensure_ascii=False) for r in ROWS],
    })


@pytest.fixture(scope="module")
def engines(spark):
    table = _table()
    con = duckdb.connect()
    con.register("corpus", table)
    con.execute("CREATE TABLE events AS SELECT * REPLACE (CAST(properties AS JSON) AS properties) FROM corpus")
    spark.createDataFrame(table).createOrReplaceTempView("events")
    yield con, spark
    con.close()


def _duckdb_ids(con: duckdb.DuckDBPyConnection, rule: str) -> list[int]:
    return [r[0] for r in con.execute(f"SELECT id FROM events WHERE {rules.to_duckdb_sql(rule)} ORDER BY id").fetchall()]


def _spark_ids(spark, rule: str) -> list[int]:
    return sorted(r[0] for r in spark.sql(f"SELECT id FROM events WHERE {rules.to_spark_sql(rule)}").collect())


@pytest.mark.parametrize("rule", SAME)
def test_same_rows(engines, rule):
    con, spark = engines
    assert _spark_ids(spark, rule) == _duckdb_ids(con, rule)


# Rules that select every row or none on purpose: Spark without the rewrite aborts (x / 0) or selects a
# row DuckDB does not (Java upper-cases 'straße' to 'STRASSE').
ALL_OR_NONE = {"length(event_name) / 0 > 1000", "(length(event_name) - length(event_name)) / 0 > 0",
               "-length(event_name) / 0 < 0", "upper(properties.city) = 'STRASSE'", "properties.missing IS NULL"}


def test_corpus_is_selective(engines):
    """The corpus discriminates: every other rule selects some rows but not all (matching nothing proves little)."""
    con, _ = engines
    counts = {rule: len(_duckdb_ids(con, rule)) for rule in SAME}
    assert {rule for rule, n in counts.items() if not 0 < n < len(ROWS)} == ALL_OR_NONE


@pytest.mark.parametrize("rule", BOTH_ABORT)
def test_both_abort(engines, rule):
    con, spark = engines
    with pytest.raises(duckdb.Error):
        _duckdb_ids(con, rule)
    with pytest.raises(Exception, match="DIVIDE_BY_ZERO|REMAINDER_BY_ZERO|CAST_INVALID_INPUT"):
        _spark_ids(spark, rule)
