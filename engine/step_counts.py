"""Step counts of the completed journeys, per scope-set class: what every snapshot's chain is built from.

`engine.snapshot` groups journeys into classes (journeys that belong to the
same set of scopes) and spreads per-class counts over each class's scopes.
This module makes those per-class counts from one fetch of the steps:

* transitions ``(cls, prev, state, next, heldout) -> count``, where `prev` is
  ``'^'`` before a journey's first step and `next` is the journey's outcome
  after its last one (the model check reads the same rows);
* reach ``(cls, state, outcome) -> journeys that visit the state, their visits,
  and how many of them visit it twice or more``;
* each journey's path: its states joined by the unit separator, and its length.

Why numpy rather than SQL windows: the steps arrive unordered; one lexsort of
(journey, step) integer keys replaces a window sort over string keys, and the
counts become grouped integer keys. Measured on 1 M events: 1.7 CPU-s of SQL
(steps window, transitions, reach, path lists) against about 0.6.

Steps with a NULL state are skipped and, with `collapse`, a step equal to the
one before it is dropped, as the journey rule does; positions are renumbered
from 0 after that. Journeys without a step have no path (and no counts).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import modelcheck
from engine.arrow_scan import in_batches
from engine.paths import SEP

START = "^"  # the `prev` of a journey's first step
_DENSE_PER_ROW = 8  # a key space up to 8x the rows is counted densely (a bincount beats a sort there) …
_DENSE_MAX = 1 << 24  # … and up to 16 M keys, so the count arrays stay under ~270 MB

_JOURNEYS_SQL = """
SELECT j.journey_id, jc.cls, coalesce(j.outcome, $dropoff) AS outcome, {heldout} AS heldout
FROM journeys j JOIN (SELECT journey_id, cls FROM {classes}) jc USING (journey_id)
WHERE j.journey = $journey AND NOT j.censored
"""
_STEPS_SQL = """
SELECT d.jix, s.step, s.state FROM journey_steps s JOIN _jg_done d USING (journey_id)
WHERE s.journey = $journey AND s.state IS NOT NULL
"""


@dataclass(frozen=True)
class StepCounts:
    """Per-class counts (Arrow tables, string columns decoded) and one path row per journey with steps."""

    transitions: pa.Table  # cls, prev, state, next, heldout, c
    reach: pa.Table        # cls, state, outcome, reached, visits, repeats
    paths: pa.Table        # journey_id, length, path


def count_steps(con: duckdb.DuckDBPyConnection, journey: str, dropoff: str, classes: str, collapse: bool) -> StepCounts:
    """Count the completed journeys' steps of `journey`; `classes` maps journey_id -> cls."""
    done = con.sql(_JOURNEYS_SQL.format(heldout=modelcheck.heldout_sql("j.journey_id"), classes=classes),
                   params={"journey": journey, "dropoff": dropoff}).to_arrow_table()
    done = done.append_column("jix", pa.array(np.arange(done.num_rows, dtype=np.int64)))
    seq = _ordered(_fetch_steps(con, journey, done), collapse)
    outcome, outcome_names = _codes(done.column("outcome"))
    cls = done.column("cls").to_numpy().astype(np.int64)
    heldout = done.column("heldout").to_numpy(zero_copy_only=False).astype(np.int64)
    return StepCounts(
        transitions=_transitions(seq, cls, heldout, outcome, outcome_names),
        reach=_reach(seq, cls, outcome, outcome_names),
        paths=_paths(seq, done.column("journey_id")),
    )


def journey_paths(con: duckdb.DuckDBPyConnection, journey: str, journey_ids: pa.Table, collapse: bool) -> pa.Table:
    """(journey_id, length, path) of the given journeys (a `journey_id` column), by the same rules as count_steps."""
    done = journey_ids.select(["journey_id"])
    done = done.append_column("jix", pa.array(np.arange(done.num_rows, dtype=np.int64)))
    return _paths(_ordered(_fetch_steps(con, journey, done), collapse), done.column("journey_id"))


def _fetch_steps(con: duckdb.DuckDBPyConnection, journey: str, done: pa.Table) -> pa.Table:
    """(jix, step, state) of the journeys in `done` (journey_id, jix): one fetch."""
    con.register("_jg_done", in_batches(done.select(["journey_id", "jix"])))
    try:
        return con.sql(_STEPS_SQL, params={"journey": journey}).to_arrow_table()
    finally:
        con.unregister("_jg_done")


@dataclass(frozen=True)
class _Sequences:
    """Kept steps sorted by (journey, step): journey index, state code, and where each journey starts."""

    jix: np.ndarray
    state: np.ndarray
    names: pa.Array       # state code -> name
    first: np.ndarray     # True on a journey's first kept step


def _ordered(steps: pa.Table, collapse: bool) -> _Sequences:
    jix = steps.column("jix").to_numpy().astype(np.int64)
    order = _step_order(jix, steps.column("step").to_numpy().astype(np.int64))
    state, names = _codes(steps.column("state"))
    jix, state = jix[order], state[order]
    first = np.ones(len(jix), dtype=bool)
    first[1:] = jix[1:] != jix[:-1]
    if collapse and len(jix):
        keep = first.copy()
        keep[1:] |= state[1:] != state[:-1]
        jix, state = jix[keep], state[keep]
        first = np.ones(len(jix), dtype=bool)
        first[1:] = jix[1:] != jix[:-1]
    return _Sequences(jix=jix, state=state, names=names, first=first)


def _step_order(jix: np.ndarray, step: np.ndarray) -> np.ndarray:
    """Row order by (journey, step).

    The journey rule numbers each journey's steps 0..k-1, so a row's place is its journey's first slot
    plus its step: a scatter, no sort (10 M steps: 1.5 s of lexsort). Anything else (a gap or a repeat
    in the numbering) falls back to the lexsort, so the order is right either way.
    """
    n = len(jix)
    if not n:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(jix)
    in_range = step.min() >= 0 and bool(np.all(step < counts[jix]))
    if in_range:
        slot = (np.cumsum(counts) - counts)[jix] + step
        filled = np.zeros(n, dtype=bool)
        filled[slot] = True
        if filled.all():  # n rows in n distinct slots: a permutation
            order = np.empty(n, dtype=np.int64)
            order[slot] = np.arange(n, dtype=np.int64)
            return order
    return np.lexsort((step, jix))


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    encoded = pc.dictionary_encode(column.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), encoded.dictionary.cast(pa.string())


def _group(columns: list[np.ndarray], sizes: list[int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of integer columns (each in [0, size)), how often each occurs, and each row's group.

    One mixed-radix int64 key (a single sort) when the sizes allow it, else a lexsort of the columns.
    """
    n = len(columns[0])
    radix = [max(size, 1) for size in sizes]
    key_space = np.prod([float(r) for r in radix])
    if key_space < 2.0 ** 62:
        key = np.zeros(n, dtype=np.int64)
        for column, r in zip(columns, radix):
            key = key * r + column
        if key_space <= min(_DENSE_PER_ROW * n, _DENSE_MAX):
            return _group_dense(key, int(key_space), radix)
        _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
        return [c[first] for c in columns], counts, inverse.reshape(-1)
    order = np.lexsort(columns[::-1])
    new = np.ones(n, dtype=bool)
    new[1:] = np.any([c[order][1:] != c[order][:-1] for c in columns], axis=0)
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return [c[order][starts] for c in columns], np.diff(np.append(starts, n)), inverse


def _group_dense(key: np.ndarray, key_space: int, radix: list[int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """`_group` for a small key space: one counting pass instead of a sort (same results as np.unique)."""
    per_key = np.bincount(key, minlength=key_space)
    present = np.flatnonzero(per_key)
    rank = np.empty(key_space, dtype=np.int64)  # written only where a key occurs: no pass over the whole space
    rank[present] = np.arange(len(present), dtype=np.int64)
    columns, rest = [], present
    for r in reversed(radix):  # mixed-radix digits, last column first
        columns.append(rest % r)
        rest = rest // r
    return columns[::-1], per_key[present], rank[key]


def _transitions(seq: _Sequences, cls: np.ndarray, heldout: np.ndarray, outcome: np.ndarray,
                 outcome_names: pa.Array) -> pa.Table:
    """(cls, prev, state, next, heldout) counts; symbols are states, then '^', then outcomes."""
    n_states = len(seq.names)
    last = np.ones(len(seq.jix), dtype=bool)
    last[:-1] = seq.first[1:]
    prev = np.where(seq.first, n_states, np.roll(seq.state, 1))
    nxt = np.where(last, n_states + 1 + outcome[seq.jix], np.roll(seq.state, -1))
    n_symbols = n_states + 1 + len(outcome_names)
    cols, counts, _ = _group([cls[seq.jix], prev, seq.state, nxt, heldout[seq.jix]],
                          [int(cls.max(initial=0)) + 1, n_symbols, n_states, n_symbols, 2])
    symbols = pa.concat_arrays([seq.names, pa.array([START], type=pa.string()), outcome_names])
    return pa.table({"cls": cols[0], "prev": symbols.take(pa.array(cols[1])), "state": seq.names.take(pa.array(cols[2])),
                     "next": symbols.take(pa.array(cols[3])), "heldout": cols[4].astype(bool), "c": counts})


def _reach(seq: _Sequences, cls: np.ndarray, outcome: np.ndarray, outcome_names: pa.Array) -> pa.Table:
    """(cls, state, outcome) -> journeys reaching the state, their visits to it, and journeys visiting it twice+."""
    n_states = len(seq.names)
    (jix, state), visits, _ = _group([seq.jix, seq.state], [len(cls), n_states])
    (c, s, o), reached, group = _group([cls[jix], state, outcome[jix]],
                                       [int(cls.max(initial=0)) + 1, n_states, len(outcome_names)])
    visit_sum = np.bincount(group, weights=visits, minlength=len(c)).astype(np.int64)
    repeats = np.bincount(group, weights=visits >= 2, minlength=len(c)).astype(np.int64)
    return pa.table({"cls": c, "state": seq.names.take(pa.array(s)), "outcome": outcome_names.take(pa.array(o)),
                     "reached": reached, "visits": visit_sum, "repeats": repeats})


def _paths(seq: _Sequences, journey_ids: pa.ChunkedArray) -> pa.Table:
    """Each journey's states in step order, joined by the unit separator, and its number of steps."""
    starts = np.flatnonzero(seq.first)
    offsets = np.append(starts, len(seq.jix)).astype(np.int64)  # large lists and strings: no 2 GB limit
    states = pa.LargeListArray.from_arrays(pa.array(offsets), seq.names.cast(pa.large_string()).take(pa.array(seq.state)))
    return pa.table({"journey_id": journey_ids.combine_chunks().take(pa.array(seq.jix[starts])),
                     "length": np.diff(offsets).astype(np.int64),
                     "path": pc.binary_join(states, pa.scalar(SEP, type=pa.large_string()))})


# Resolved steps of censored journeys (engine.journeys' journey_progress): a step entered at ts is resolved
# once ts + horizon <= data end, whatever its destination: by then either the next step or outcome event came
# (within `inactive_for` of ts) or the inactivity cut decided "dropped". Inclusion depends on the entry time
# only, so it cannot favour any destination. The last resolved step of a journey goes to its known outcome.
_PARTIAL_SQL = """
WITH p AS (SELECT j.journey_id, jc.cls, pr.known_outcome, e.data_end
           FROM journeys j JOIN (SELECT journey_id, cls FROM {classes}) jc USING (journey_id)
           JOIN _jg_progress pr USING (journey_id)
           JOIN _jg_ends e ON e.tenant_id = coalesce(j.tenant_id, '')
           WHERE j.journey = $journey AND j.censored),
s AS (SELECT p.cls, s.state, s.ts, p.data_end, coalesce(lead(s.state) OVER w, p.known_outcome) AS next
      FROM journey_steps s JOIN p USING (journey_id)
      WHERE s.journey = $journey AND s.state IS NOT NULL
      WINDOW w AS (PARTITION BY s.journey_id ORDER BY s.step))
SELECT cls, state, next, count(*)::BIGINT AS c FROM s
WHERE s.ts + to_seconds($horizon) <= s.data_end GROUP BY ALL ORDER BY ALL
"""


def count_partial_steps(con: duckdb.DuckDBPyConnection, journey: str, classes: str, horizon_s: int | None) -> pa.Table:
    """(cls, state, next, c): resolved steps of the censored journeys, per class.

    `horizon_s` is the journey's `inactive_for`; without one (or with collapsed self-loops, whose hidden
    repeats can keep a state open past ts + inactive_for) no step of an open journey is resolved before
    its window ends, so the table is empty. A resolved step always has a destination (see engine.journeys:
    last step + inactive_for <= data end means the journey's end is known); a NULL one is an error.
    """
    empty = pa.table({"cls": pa.array([], pa.int64()), "state": pa.array([], pa.string()),
                      "next": pa.array([], pa.string()), "c": pa.array([], pa.int64())})
    if horizon_s is None:
        return empty
    table = con.sql(_PARTIAL_SQL.format(classes=classes),
                    params={"journey": journey, "horizon": int(horizon_s)}).to_arrow_table()
    if table.column("next").null_count:
        raise ValueError(f"journey {journey}: a resolved step of an open journey has no destination")
    return table.cast(empty.schema) if table.num_rows else empty
