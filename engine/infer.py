"""Infer a journey when `journeygraph run EVENTS` is given no config.

Raw event names become states. The start state is the event most actors do
first; a conversion outcome is an event whose name reads like success
(purchase, subscription, order completed, …); everything else ends by
inactivity. Window and inactivity scale with the data's time span so a
one-day log is not censored whole. Every choice is reported to the user.
"""

from __future__ import annotations

import dataclasses
import re

import duckdb

from engine.config import Config, JourneyConfig, Outcome
from engine.durations import format_duration
from ontology.errors import ConfigError

_SUCCESS = re.compile(
    r"(purchase|subscri|order_?(placed|complete)|checkout_?complete|convert|paid|payment_?succe|upgrade|approved|activated)",
    re.I,
)


def _round_duration(seconds: float) -> int:
    for unit in (86400, 3600, 60):
        if seconds >= unit:
            return max(unit, int(seconds // unit) * unit)
    return max(60, int(seconds))


def infer_journey(con: duckdb.DuckDBPyConnection, cfg: Config) -> Config:
    """Return cfg with one inferred raw-level journey and notes on what was inferred."""
    row = con.execute(
        """
        WITH firsts AS (
          SELECT arg_min(event_name, seq) AS first_event FROM events GROUP BY tenant_id, actor_id)
        SELECT first_event, count(*) AS n FROM firsts GROUP BY 1 ORDER BY n DESC, first_event LIMIT 1
        """
    ).fetchone()
    if row is None:
        raise ConfigError("no accepted events to infer a journey from; check the quarantine counts in the run summary")
    start = row[0]
    names = con.execute(
        "SELECT event_name, count(DISTINCT actor_id) AS n FROM events GROUP BY 1 ORDER BY n DESC, event_name"
    ).fetchall()
    conversion = next((name for name, _ in names if name != start and _SUCCESS.search(name)), None)
    span = con.execute("SELECT epoch(max(ts)) - epoch(min(ts)) FROM events").fetchone()[0] or 0
    window = _round_duration(min(30 * 86400, max(3600, span / 3)))
    inactive = _round_duration(min(14 * 86400, window / 2))
    outcomes = []
    if conversion:
        outcomes.append(Outcome(name="converted", when=f"event_name = '{conversion.replace(chr(39), chr(39) * 2)}'"))
    outcomes.append(Outcome(name="dropped", inactive_for_s=inactive))
    journey = JourneyConfig(name="journey", start=start, outcomes=tuple(outcomes), level="raw", window_s=window)
    notes = (
        f"no config: states are raw event names ({len(names)} distinct)",
        f"start state: {start!r} (the first event of the most actors)",
        f"conversion: {conversion!r} (name reads like success)" if conversion
        else "conversion: none found (no event name reads like purchase/subscription/order); only drop-off is measured",
        f"window {format_duration(window)}, dropped after {format_duration(inactive)} inactive (scaled to the data's span)",
        "write a config with `journeygraph init` to name states, outcomes and segments",
    )
    return dataclasses.replace(cfg, journeys=(journey,), inferred=notes)
