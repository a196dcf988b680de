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
from engine.dbsettings import engine_settings

LEVEL_COLUMNS = {"raw": "state_raw", "semantic": "state_semantic", "lifecycle": "state_lifecycle"}


def case_sql(items: tuple[StateRule, ...], kind: str, dialect: str = "duckdb") -> str:
    """CASE WHEN rule1 THEN 'name1' WHEN … END (NULL when no rule matches or none are defined); dialect duckdb or spark."""
    if not items:
        return "CAST(NULL AS VARCHAR)" if dialect == "duckdb" else "CAST(NULL AS STRING)"
    whens = " ".join(
        f"WHEN {rules.compile_sql(rule.when, f'{kind}[{i}] ({rule.name}).when', dialect)} THEN {rules.string_literal(rule.name, dialect)}"
        for i, rule in enumerate(items))
    return f"CASE {whens} END"


def derive(con: duckdb.DuckDBPyConnection, cfg: Config) -> None:
    """Fill state_semantic and state_lifecycle on every row of `events` (state_raw is the event name, set by normalize).

    An UPDATE in place: only the state columns are rewritten (copying the whole table took three times
    as long), and none at all when no rules are configured: the columns stay NULL.
    """
    if not cfg.states and not cfg.lifecycle:
        return
    with engine_settings(con):
        con.execute(f"""
            UPDATE events SET state_semantic = {case_sql(cfg.states, 'states')},
                              state_lifecycle = {case_sql(cfg.lifecycle, 'lifecycle')}""")
