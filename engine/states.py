"""Derive each event's state at the three levels: raw, semantic, lifecycle.

* raw: the event name itself (200 event types are 200 states);
* semantic: the first `states:` rule whose predicate holds (NULL if none), so
  analysts fold noisy names into 15-30 meaningful steps;
* lifecycle: the first `lifecycle:` rule that holds (5-8 coarse positions).

Rules are compiled by `engine.rules` into one CASE WHEN expression per level
and evaluated in a single vectorised pass over `events`; "first match wins"
is exactly CASE's semantics. A journey at a level skips events whose state
there is NULL.
"""

from __future__ import annotations

import duckdb

from engine import rules
from engine.config import Config, StateRule
from engine.normalize import EVENTS_DDL

LEVEL_COLUMNS = {"raw": "state_raw", "semantic": "state_semantic", "lifecycle": "state_lifecycle"}


def case_sql(items: tuple[StateRule, ...], kind: str) -> str:
    """CASE WHEN rule1 THEN 'name1' WHEN … END (NULL when no rule matches or none are defined)."""
    if not items:
        return "CAST(NULL AS VARCHAR)"
    whens = " ".join(
        f"WHEN {rules.to_duckdb_sql(rule.when, f'{kind}[{i}] ({rule.name}).when')} THEN {_literal(rule.name)}"
        for i, rule in enumerate(items))
    return f"CASE {whens} END"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def derive(con: duckdb.DuckDBPyConnection, cfg: Config) -> None:
    """Fill state_raw, state_semantic and state_lifecycle on every row of `events`."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE _jg_stated AS
        SELECT * EXCLUDE (state_raw, state_semantic, state_lifecycle),
               event_name AS state_raw,
               {case_sql(cfg.states, 'states')} AS state_semantic,
               {case_sql(cfg.lifecycle, 'lifecycle')} AS state_lifecycle
        FROM events""")
    con.execute(EVENTS_DDL)  # the contract's column types and NOT NULLs, not whatever CTAS would infer
    con.execute("INSERT INTO events SELECT * FROM _jg_stated ORDER BY tenant_id, actor_id, seq")
    con.execute("DROP TABLE _jg_stated")
