"""What a carried feed item's audit trace reads: the data of the run that found it (issue 18).

A run carries each finding of the previous feed that it no longer finds once, as a "resolved"
notice (engine.lifecycle.closed_items). That notice's numbers were computed from the previous
run's data, which this run has replaced: its events and journey steps (Parquet files the
previous manifest named), its `journeys` and `journey_progress` tables and its config. Its
snapshots, findings and insights are still stored (those tables are insert-only). So that the
notice still traces 100 %, the run that carries it keeps the rest:

* `carried_files` names, per generation (the previous run's data, named by its content), the
  files of each relation: the previous manifest's layer files, and the previous `journeys` and
  `journey_progress` (and any pre-Parquet stored layer) written once to content-named Parquet
  under gold/carried/. engine.silver.collect_garbage keeps every file named here.
* `carried_items` maps each carried insight to its generation and the previous run's saved config.

Every run rewrites both tables with what its own feed carries, so a run that carries nothing
empties them and the next run's garbage collection drops the files only they named. A run that
carries nothing and finds no such tables writes nothing (its database is an ordinary run's).
`reader` gives the trace a connection whose `events`, `journey_steps`, `journeys` and
`journey_progress` are the carried generation's (TEMP views shadowing the current ones).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from engine import silver
from ontology.errors import NotFound

FILES, ITEMS = "carried_files", "carried_items"
_DDL = (f"CREATE TABLE IF NOT EXISTS {FILES}(generation VARCHAR, relation VARCHAR, path VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS {ITEMS}(insight_id VARCHAR, generation VARCHAR, config JSON)")
RELATIONS = ("events", "journey_steps", "journeys", "journey_progress")
_LAYERS = {"events": ("events",), "journey_steps": ("journey_steps", silver.OPEN_DELTA, silver.SEALED_STEPS)}  # manifest layers
_PREV = "_jg_carried_from"
log = logging.getLogger(__name__)


def keep(con: duckdb.DuckDBPyConnection, published: Path, insight_ids: Sequence[str]) -> None:
    """Record what the traces of the carried `insight_ids` read: the data of `published` (the previous run's file).

    Call in a run, after its stages replaced the derived tables and before it publishes."""
    if silver.is_table(con, ITEMS):
        con.execute(f"DELETE FROM {ITEMS}")
        con.execute(f"DELETE FROM {FILES}")
    if not insight_ids or silver.root_of(con) is None or not published.exists():
        return
    started = time.perf_counter()
    con.execute(f"ATTACH {silver.quote_literal(str(published))} AS {_PREV} (READ_ONLY)")
    try:
        files = [(rel, path) for rel in RELATIONS for path in _previous_files(con, rel)]
        config = _previous_config(con)
    finally:
        con.execute(f"DETACH {_PREV}")
    generation = hashlib.sha256("\n".join(f"{r}\t{p}" for r, p in sorted(files)).encode()).hexdigest()[:16]
    for sql in _DDL:
        con.execute(sql)
    if files:  # DuckDB's executemany refuses an empty parameter list
        con.executemany(f"INSERT INTO {FILES} VALUES (?, ?, ?)", [(generation, r, p) for r, p in files])
    con.executemany(f"INSERT INTO {ITEMS} VALUES (?, ?, ?)", [(i, generation, config) for i in sorted(set(insight_ids))])
    log.info("carried %d notices: kept %d files of the previous run in %.3f s", len(set(insight_ids)), len(files),
             time.perf_counter() - started)


def _previous_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
                            [_PREV, name]).fetchall()[0][0])


def _previous_files(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The previous run's files of `relation`: its manifest's, else its stored table written out once."""
    if _previous_table(con, relation):  # journeys, journey_progress (and a pre-Parquet events/journey_steps)
        return [silver.write_kept(con, f"SELECT * FROM {_PREV}.main.{relation} ORDER BY ALL", relation)]
    if relation not in _LAYERS or not _previous_table(con, silver.MANIFEST):
        return []
    if relation == "journey_steps" and _previous_table(con, silver.SUPERSEDED):  # its open steps, as one file
        return [_previous_open_steps(con)] + _previous_layer_files(con, [silver.SEALED_STEPS])
    return _previous_layer_files(con, list(_LAYERS[relation]))


def _previous_layer_files(con: duckdb.DuckDBPyConnection, layers: list[str]) -> list[str]:
    return [r[0] for r in con.execute(
        f"SELECT path FROM {_PREV}.main.{silver.MANIFEST} WHERE list_contains(?, layer) ORDER BY layer, tenant_id, part, path",
        [layers]).fetchall()]


def _previous_open_steps(con: duckdb.DuckDBPyConnection) -> str:
    """The previous run's open steps (engine.silver's base less its superseded journeys, and the delta) as one
    content-named file under gold/carried/."""
    root = silver.root_of(con) or Path(".")
    base, delta = ([str(root / p) for p in _previous_layer_files(con, [layer])] for layer in ("journey_steps", silver.OPEN_DELTA))
    query = silver.steps_sql(base, delta, f"{_PREV}.main.{silver.SUPERSEDED}")
    return silver.write_kept(con, f"SELECT * FROM ({query}) ORDER BY ALL", "journey_steps")


def _previous_config(con: duckdb.DuckDBPyConnection) -> str | None:
    if not _previous_table(con, "workspace_config"):
        return None
    row = con.execute(f"SELECT saved::VARCHAR FROM {_PREV}.main.workspace_config").fetchone()
    return None if row is None else str(row[0])


def kept_paths(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every file a carried item's trace reads (relative to the workspace): garbage collection keeps them."""
    if not silver.is_table(con, FILES):
        return set()
    return {r[0] for r in con.execute(f"SELECT DISTINCT path FROM {FILES}").fetchall()}


@dataclass
class Held:
    """A carried item's data: a connection reading it, and the saved config of the run that found the item."""

    con: duckdb.DuckDBPyConnection
    saved: dict[str, Any] | None

    def config(self) -> Any:
        """The run's engine.config.Config (None when that run stored none)."""
        if self.saved is None:
            return None
        from engine.config import from_saved

        return from_saved(self.saved, base_dir=".")


@contextmanager
def reader(con: duckdb.DuckDBPyConnection, insight_id: str) -> Iterator[Held | None]:
    """For a carried insight: a cursor of `con` whose derived relations are its generation's; else None."""
    root = silver.root_of(con)
    row = con.execute(f"SELECT generation, config::VARCHAR FROM {ITEMS} WHERE insight_id = ?",
                      [insight_id]).fetchone() if root is not None and silver.is_table(con, ITEMS) else None
    if root is None or row is None:
        yield None
        return
    files: dict[str, list[str]] = {rel: [] for rel in RELATIONS}
    for rel, path in con.execute(f"SELECT relation, path FROM {FILES} WHERE generation = ? ORDER BY relation, path",
                                 [row[0]]).fetchall():
        if not (root / path).is_file():  # removed by hand: say so, not a DuckDB error naming the path
            raise NotFound(f"the data behind carried insight {insight_id} is gone from the workspace ({rel}); "
                           "its numbers cannot be recomputed until the next run drops the notice")
        files[rel].append(str(root / path))
    database = con.execute("SELECT current_database()").fetchall()[0][0]
    cur = con.cursor()  # TEMP views are per connection: the caller's own stay as they are
    try:
        cur.execute('USE "{}"'.format(database.replace('"', '""')))
        for rel, paths in files.items():
            silver.view_over(cur, rel, paths)
        yield Held(cur, json.loads(row[1]) if row[1] else None)
    finally:
        cur.close()
