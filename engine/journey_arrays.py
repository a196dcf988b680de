"""The journey rule (engine.journeys) on sorted arrays: one pass of numpy, no per-event Python.

Input: every event inside some journey's observation window, sorted by
(actor, seq), with the actor's start event first (engine.journeys fetches
exactly those rows and orders them with engine.actor_batches). Row order inside an actor is seq order, so "the first
X after the start" is "the lowest row index with X", and SQL's
``lag() OVER (PARTITION BY actor ORDER BY seq)`` is a shift by one row with a
same-actor check. Measured on 1 M events this replaces four window sorts and
two joins (≈ 3 s) with ≈ 0.1 s of array work after one sorted fetch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NONE = -1  # "no such row" / SQL NULL in integer-coded columns


@dataclass(frozen=True)
class Cut:
    """Per journey (one per actor group) and per kept step, as row indices into the input."""

    first_rows: np.ndarray    # the start event of each journey
    outcome_rows: np.ndarray  # its first outcome event, or NONE
    cut_rows: np.ndarray      # its first inactivity cut (a timeline row after a long gap), or NONE
    cut_prev_rows: np.ndarray  # the timeline row before the cut, or NONE
    last_step_rows: np.ndarray  # its last kept step
    n_steps: np.ndarray
    step_rows: np.ndarray     # every kept step, journey by journey, in step order
    step_journey: np.ndarray  # the journey (group index) of each kept step
    step_number: np.ndarray   # 0-based step within its journey


def group_starts(new_group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group index per row, first row of each group) from a 'row starts a new group' mask."""
    gid = np.cumsum(new_group) - 1
    return gid, np.flatnonzero(new_group)


def first_per_group(rows: np.ndarray, gid: np.ndarray, n_groups: int) -> np.ndarray:
    """The lowest of `rows` (ascending row indices) in each group, NONE where a group has none."""
    out = np.full(n_groups, NONE, dtype=np.int64)
    if len(rows):
        groups, first = np.unique(gid[rows], return_index=True)
        out[groups] = rows[first]
    return out


def _previous_in_group(rows: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """For ascending `rows`, the row before each one within the same group (NONE for a group's first)."""
    prev = np.full(len(rows), NONE, dtype=np.int64)
    if len(rows) > 1:
        same = gid[rows[1:]] == gid[rows[:-1]]
        prev[1:] = np.where(same, rows[:-1], NONE)
    return prev


def cut(gid: np.ndarray, first_rows: np.ndarray, state: np.ndarray, hit: np.ndarray, ts: np.ndarray,
        gap_us: int | None, collapse: bool) -> Cut:
    """Apply the journey rule to sorted rows.

    `state`: state code per row (NONE = no state at this level); `hit`: outcome code per row (NONE =
    none; already NONE on each start row); `ts`: epoch microseconds. Mirrors engine.journeys' rule:
    outcome = first hit after the start; timeline = rows with a state and no hit, up to and including
    the outcome row; cut = first timeline row at least `gap_us` after the timeline row before it;
    steps = rows with a state and no hit before the cut (else before the outcome).
    """
    n, n_groups = len(gid), len(first_rows)
    rows = np.arange(n, dtype=np.int64)
    outcome_rows = first_per_group(np.flatnonzero(hit != NONE), gid, n_groups)
    row_outcome = outcome_rows[gid]
    up_to_outcome = (row_outcome == NONE) | (rows <= row_outcome)
    timeline = np.flatnonzero((((state != NONE) & (hit == NONE)) | (rows == row_outcome)) & up_to_outcome)

    cut_rows = np.full(n_groups, NONE, dtype=np.int64)
    cut_prev_rows = np.full(n_groups, NONE, dtype=np.int64)
    if gap_us is not None:
        prev = _previous_in_group(timeline, gid)
        has_prev = prev != NONE
        gaps = timeline[has_prev][ts[timeline[has_prev]] - ts[prev[has_prev]] >= gap_us]
        cut_rows = first_per_group(gaps, gid, n_groups)
        found = cut_rows != NONE
        before = np.full(n, NONE, dtype=np.int64)
        before[timeline] = prev
        cut_prev_rows[found] = before[cut_rows[found]]

    limit = np.where(cut_rows != NONE, cut_rows, np.where(outcome_rows != NONE, outcome_rows, n))
    steps = np.flatnonzero((state != NONE) & (hit == NONE) & (rows < limit[gid]))
    if collapse and len(steps):
        prev = _previous_in_group(steps, gid)
        repeated = (prev != NONE) & (state[steps] == state[np.maximum(prev, 0)])
        steps = steps[~repeated]
    step_journey = gid[steps]
    n_steps = np.bincount(step_journey, minlength=n_groups).astype(np.int64)
    first_step_index = np.cumsum(n_steps) - n_steps
    step_number = np.arange(len(steps), dtype=np.int64) - first_step_index[step_journey]
    last_step_rows = np.full(n_groups, NONE, dtype=np.int64)
    has_steps = n_steps > 0
    last_step_rows[has_steps] = steps[(first_step_index + n_steps - 1)[has_steps]]
    return Cut(first_rows=first_rows, outcome_rows=outcome_rows, cut_rows=cut_rows, cut_prev_rows=cut_prev_rows,
               last_step_rows=last_step_rows, n_steps=n_steps, step_rows=steps, step_journey=step_journey,
               step_number=step_number)


def first_valid_up_to(valid: np.ndarray, gid: np.ndarray, last_rows: np.ndarray) -> np.ndarray:
    """Per group, the first row where `valid` holds at or before the group's `last_rows` row (else NONE)."""
    rows = np.flatnonzero(valid)
    rows = rows[rows <= last_rows[gid[rows]]]
    return first_per_group(rows, gid, len(last_rows))
