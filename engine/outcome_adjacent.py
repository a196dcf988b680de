"""Journeys whose last visit to a state falls just before their outcome event, per (state, outcome).

Read by detectors.leakage: a state logged at the same instant as an outcome
event, or always a few seconds before it, is part of that outcome, not a step
towards it. Only explicit outcomes count (a drop-off has no event: its time is
the last step plus the inactivity timeout, or the window's end).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

WITHIN_S = 5  # seconds before the outcome event that still count as "at" it

COUNTS_SQL = f"""
WITH near AS (SELECT DISTINCT s.journey_id, s.state, j.outcome FROM journey_steps s
              JOIN journeys j ON j.journey = s.journey AND j.journey_id = s.journey_id
              WHERE s.journey = $journey AND NOT j.censored AND j.outcome <> $dropoff AND s.state IS NOT NULL
                AND s.ts >= j.end_ts - INTERVAL {WITHIN_S} SECOND),
per AS (SELECT c.cls, near.state, near.outcome, count(*) AS n FROM near JOIN _jg_jclass c USING (journey_id) GROUP BY ALL)
SELECT cs.sid, per.state, per.outcome, sum(per.n)::BIGINT FROM per JOIN _jg_csid cs USING (cls) GROUP BY ALL
"""


def payload_block(counts: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """One scope's counts as the snapshot's `outcome_adjacent` block (sorted, deterministic)."""
    return {"within_s": WITHIN_S, "counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}}
