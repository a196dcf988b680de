"""The predicate language: what is allowed, what it compiles to, and what is refused with which words."""

from __future__ import annotations

import duckdb
import pytest

from engine import rules
from engine.config import from_dict
from ontology.errors import ConfigError

WHERE = "states[1] (feature_used).when"

ALLOWED = [
    ("in_list", "event_name IN ('csv_import', 'api_import')", "event_name IN ('csv_import', 'api_import')"),
    ("property_path", "properties.feature <> 'settings'", "JSON_EXTRACT_STRING(properties, '$.feature') <> 'settings'"),
    ("nested_property", "properties.a.b.c = 'x'", "JSON_EXTRACT_STRING(properties, '$.a.b.c') = 'x'"),
    ("cast_is_try_cast", "CAST(properties.amount AS INTEGER) >= 15000", "TRY_CAST(JSON_EXTRACT_STRING(properties, '$.amount') AS INT) >= 15000"),
    ("double_colon_cast", "properties.n::DOUBLE > 1.5", "TRY_CAST(JSON_EXTRACT_STRING(properties, '$.n') AS DOUBLE) > 1.5"),
    ("user_id_is_actor", "user_id = 'u1'", "actor_id = 'u1'"),
    ("timestamp_is_ts", "timestamp >= '2026-01-01'", "ts >= '2026-01-01'"),
    ("like_ilike", "platform LIKE 'i%' OR user_agent ILIKE '%Mobile%'", "platform LIKE 'i%' OR user_agent ILIKE '%Mobile%'"),
    ("is_null", "platform IS NOT NULL AND NOT tenant_id IS NULL", "NOT platform IS NULL AND NOT tenant_id IS NULL"),
    ("between_arith", "length(event_name) * 2 + 1 BETWEEN 3 AND 40", "LENGTH(event_name) * 2 + 1 BETWEEN 3 AND 40"),
    ("case", "CASE WHEN platform = 'ios' THEN 1 ELSE 0 END = 1", "CASE WHEN platform = 'ios' THEN 1 ELSE 0 END = 1"),
    ("functions", "lower(upper(trim(event_name))) = 'a' AND coalesce(platform, 'web') = 'web'", "LOWER(UPPER(TRIM(event_name))) = 'a'"),
    ("regexp", "regexp_matches(event_name, '^feat')", "REGEXP_MATCHES(event_name, '^feat')"),
    ("starts_contains", "starts_with(event_name, 'a') OR contains(event_name, 'b')", "STARTS_WITH(event_name, 'a')"),
    ("abs_round", "abs(round(CAST(properties.x AS DOUBLE))) > 2", "ABS(ROUND(TRY_CAST("),
]

REFUSED = [
    ("table_function", "event_name IN (SELECT event_name FROM read_csv('/etc/passwd'))", ["IN takes a list of literals only"]),
    ("read_csv_call", "read_csv('/etc/passwd') IS NOT NULL", ["function read_csv is not allowed", "allowed: abs, coalesce"]),
    ("scalar_subquery", "(SELECT 1) = 1", ["subqueries are not allowed"]),
    ("settings", "current_setting('threads') = 2", ["function current_setting is not allowed"]),
    ("env", "getenv('HOME') = '/root'", ["function getenv is not allowed"]),
    ("unknown_column", "plan = 'pro'", ["column plan is not allowed", "properties.<path>"]),
    ("statement_injection", "event_name = 'a'; DROP TABLE events", ["is not allowed in a rule"]),
    ("bracket", "properties['plan'] = 'pro'", ["BRACKET", "is not allowed in a rule"]),
    ("placeholder", "event_name = ?", ["placeholders are not allowed"]),
    ("blob_cast", "CAST(event_name AS BLOB) = 'a'", ["CAST to BLOB is not allowed"]),
    ("syntax", "event_name = ", ["not a valid SQL expression"]),
    ("empty", "   ", ["empty rule"]),
    ("bad_path_segment", 'properties."a b" = 1', ["property path segment 'a b'"]),
]


@pytest.mark.parametrize(("expr", "expected"), [(e, s) for _, e, s in ALLOWED], ids=[i for i, _, _ in ALLOWED])
def test_allowed_rules_compile(expr: str, expected: str) -> None:
    rules.check_predicate(expr, WHERE)
    sql = rules.to_duckdb_sql(expr, WHERE)
    assert expected in sql


@pytest.mark.parametrize(("expr", "pieces"), [(e, p) for _, e, p in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_refused_rules_name_the_rule_and_the_part(expr: str, pieces: list[str]) -> None:
    with pytest.raises(ConfigError) as err:
        rules.check_predicate(expr, WHERE)
    message = str(err.value)
    assert message.startswith(f"{WHERE}: ")
    for piece in pieces:
        assert piece in message


@pytest.mark.parametrize(("column", "expected"), [
    ("platform", "platform"), ("properties.plan", "JSON_EXTRACT_STRING(properties, '$.plan')"), ("user_id", "actor_id"),
], ids=["plain", "property", "alias"])
def test_segment_columns(column: str, expected: str) -> None:
    assert rules.column_sql(column, "segments.x.column") == expected


@pytest.mark.parametrize("column", ["lower(platform)", "plan", "platform = 'ios'"], ids=["function", "unknown", "predicate"])
def test_segment_column_must_be_a_column(column: str) -> None:
    with pytest.raises(ConfigError, match=r"^segments\.x\.column: "):
        rules.check_column(column, "segments.x.column")


def test_config_loading_refuses_a_bad_rule_with_its_key_path() -> None:
    raw = {"states": [{"name": "ok", "when": "event_name = 'a'"}, {"name": "feature_used", "when": "read_csv('x') = 1"}],
           "journeys": {"j": {"start": "ok", "outcomes": {"done": "event_name = 'b'"}}}}
    with pytest.raises(ConfigError, match=r"states\[1\] \(feature_used\)\.when: function read_csv is not allowed"):
        from_dict(raw)


@pytest.mark.parametrize(("expr", "matches"), [
    ("event_name IN ('a', 'b')", [True, True, False]),
    ("properties.plan = 'pro'", [True, False, False]),
    ("CAST(properties.amount AS INTEGER) >= 100", [True, False, False]),  # '12k' is NULL under TRY_CAST, not an error
    ("coalesce(platform, 'web') = 'web'", [False, True, True]),
], ids=["in", "property", "try_cast", "coalesce"])
def test_compiled_rules_run_on_duckdb(expr: str, matches: list[bool]) -> None:
    con = duckdb.connect()
    con.execute("""CREATE TABLE events AS SELECT * FROM (VALUES
        (1, 'a', 'ios', '{"plan": "pro", "amount": "150"}'::JSON),
        (2, 'b', NULL, '{"plan": "free", "amount": "12k"}'::JSON),
        (3, 'c', 'web', '{}'::JSON)) t(i, event_name, platform, properties)""")
    got = [bool(r[0]) for r in con.execute(f"SELECT coalesce({rules.to_duckdb_sql(expr)}, false) FROM events ORDER BY i").fetchall()]
    assert got == matches
