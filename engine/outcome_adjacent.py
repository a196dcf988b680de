"""Journeys whose last visit to a state falls just before their outcome event, per (state, outcome).

Read by detectors.leakage: a state logged at the same instant as an outcome
event, or always a few seconds before it, is part of that outcome, not a step
towards it. Only explicit outcomes count (a drop-off has no event: its time is
the last step plus the inactivity timeout, or the window's end).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import step_counts
from engine.step_arrays import NULL_TS, StepArrays

WITHIN_S = 5  # seconds before the outcome event that still count as "at" it

# the per-class counts (`class_counts`, as the TEMP table _jg_cadj) spread over each class's scopes
COUNTS_SQL = """SELECT cs.sid, a.state, a.outcome, sum(a.n)::BIGINT FROM _jg_cadj a JOIN _jg_csid cs USING (cls)
                GROUP BY ALL"""


def class_counts(steps: StepArrays, jr: step_counts.Journeys, dropoff: str) -> pa.Table:
    """(cls, state, outcome, n): completed journeys with an explicit outcome that visit the state within WITHIN_S
    seconds before their end (the outcome event), per class."""
    dropped = pc.index_in(pa.array([dropoff]), value_set=jr.outcome_names)[0].as_py()
    explicit = jr.done & (jr.outcome >= 0) & (jr.outcome != (-2 if dropped is None else dropped))
    end = jr.end_us[steps.jix]
    rows = (explicit[steps.jix] & (steps.state >= 0) & (steps.ts != NULL_TS) & (end != NULL_TS)
            & (steps.ts >= end - WITHIN_S * 1_000_000))
    n_states = len(steps.names)
    near = steps.jix[rows]
    first = np.ones(len(near), dtype=bool)
    first[1:] = near[1:] != near[:-1]
    jix, state, _ = step_counts.visits_per_state(near, steps.state[rows], first, n_states)
    (c, s, o), n, _ = step_counts.group([jr.cls[jix], state, jr.outcome[jix]],
                                        [int(jr.cls.max(initial=0)) + 1, n_states, len(jr.outcome_names)])
    return pa.table({"cls": c.astype(np.int64), "state": steps.names.take(pa.array(s, pa.int64())),
                     "outcome": jr.outcome_names.take(pa.array(o, pa.int64())), "n": n.astype(np.int64)})


def payload_block(counts: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """One scope's counts as the snapshot's `outcome_adjacent` block (sorted, deterministic)."""
    return {"within_s": WITHIN_S, "counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}}
