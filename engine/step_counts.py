"""Step counts of the completed journeys, per scope-set class: what every snapshot's chain is built from.

`engine.snapshot` groups journeys into classes (journeys that belong to the
same set of scopes) and spreads per-class counts over each class's scopes.
This module makes those per-class counts from the journey's steps, read once
(engine.step_arrays):

* transitions ``(cls, prev, state, next, heldout) -> count``, where `prev` is
  ``'^'`` before a journey's first step and `next` is the journey's outcome
  after its last one (the model check reads the same rows);
* reach ``(cls, state, outcome) -> journeys that visit the state, their visits,
  and how many of them visit it twice or more``;
* each journey's path: its states joined by the unit separator, and its length;
* the resolved steps of open journeys ``(cls, state, next) -> count``.

Why numpy rather than SQL windows: with the steps already grouped by journey
in step order, every count is a grouping of integer keys. Measured on 1 M
events: 1.7 CPU-s of SQL (steps window, transitions, reach, path lists) against
about 0.6.

Steps with a NULL state are skipped and, with `collapse`, a step equal to the
one before it is dropped, as the journey rule does; positions are renumbered
from 0 after that. Journeys without a step have no path (and no counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import modelcheck, paths, step_arrays
from engine.step_arrays import NULL_TS, StepArrays

START = "^"  # the `prev` of a journey's first step
_DENSE_PER_ROW = 8  # a key space up to 8x the rows is counted densely (a bincount beats a sort there) …
_DENSE_MAX = 1 << 24  # … and up to 16 M keys, so the count arrays stay under ~270 MB

# What the counts need of each journey of the snapshot's per-journey table `{journeys}` (engine.snapshot:
# jix, cls, censored, outcome (drop-off when NULL), known_outcome, tracked (has a journey_progress row),
# journey_id, end_ts, data_end). `outcome` is the known outcome for a censored journey.
_JOURNEYS_SQL = """
SELECT jix, cls, censored, tracked, CASE WHEN censored THEN known_outcome ELSE outcome END AS outcome,
       CASE WHEN NOT censored THEN {heldout} END AS heldout, epoch_us(end_ts) AS end_us, epoch_us(data_end) AS data_end_us
FROM {journeys}
"""


@dataclass(frozen=True)
class StepCounts:
    """Per-class counts (Arrow tables, string columns decoded) and one path row per journey with steps."""

    transitions: pa.Table  # cls, prev, state, next, heldout, c
    reach: pa.Table        # cls, state, outcome, reached, visits, repeats
    paths: pa.Table        # jix, cls, length, path_id
    path_names: pa.Array   # path_id -> path (engine.paths.path_ids)


@dataclass(frozen=True)
class Journeys:
    """Per-journey values, indexed by jix (StepArrays.size long); `counted` is False where no journey is."""

    counted: np.ndarray
    cls: np.ndarray
    censored: np.ndarray
    tracked: np.ndarray
    outcome: np.ndarray        # code into outcome_names, -1 for NULL (a censored journey's unknown outcome)
    outcome_names: pa.Array
    heldout: np.ndarray
    end_us: np.ndarray         # NULL_TS for NULL
    data_end_us: np.ndarray

    @property
    def done(self) -> np.ndarray:
        return self.counted & ~self.censored


def journeys(con: duckdb.DuckDBPyConnection, table: str, size: int) -> Journeys:
    """The per-journey values of `table` (see _JOURNEYS_SQL) as arrays indexed by jix."""
    t = con.sql(_JOURNEYS_SQL.format(heldout=modelcheck.heldout_sql("journey_id"), journeys=table)).to_arrow_table()
    jix = t.column("jix").to_numpy().astype(np.int64)

    def spread(values: np.ndarray, fill: Any) -> np.ndarray:
        out = np.full(size, fill, dtype=np.asarray(values).dtype if len(values) else np.int64)
        out[jix] = values
        return out

    def column(name: str, fill: Any) -> np.ndarray:
        return spread(pc.fill_null(t.column(name), fill).to_numpy(zero_copy_only=False), fill)

    outcome, names = _codes(t.column("outcome"))
    return Journeys(counted=spread(np.ones(len(jix), dtype=bool), False), cls=column("cls", -1).astype(np.int64),
                    censored=column("censored", False).astype(bool), tracked=column("tracked", False).astype(bool),
                    outcome=spread(outcome, -1), outcome_names=names, heldout=column("heldout", False).astype(np.int64),
                    end_us=column("end_us", NULL_TS).astype(np.int64),
                    data_end_us=column("data_end_us", NULL_TS).astype(np.int64))


def count_steps(steps: StepArrays, jr: Journeys, collapse: bool) -> StepCounts:
    """Count the completed journeys' steps (NULL states skipped)."""
    seq = _sequences(steps, jr.done[steps.jix] & (steps.state >= 0), collapse)
    return StepCounts(
        transitions=_transitions(seq, jr.cls, jr.heldout, jr.outcome, jr.outcome_names),
        reach=_reach(seq, jr.cls, jr.outcome, jr.outcome_names),
        **_paths(seq, jr.cls),
    )


def journey_paths(con: duckdb.DuckDBPyConnection, journey: str, journey_ids: pa.Table, collapse: bool,
                  steps: StepArrays | None = None) -> pa.Table:
    """(journey_id, length, path) of the given journeys (a `journey_id` column), by the same rules as count_steps;
    `steps`: the journey definition's StepArrays when the caller has them (else they are fetched)."""
    steps = step_arrays.fetch(con, journey) if steps is None else steps
    where = pc.index_in(journey_ids.column("journey_id").combine_chunks(), value_set=steps.journey_ids)
    wanted = np.zeros(steps.size, dtype=bool)
    wanted[pc.drop_null(where).to_numpy(zero_copy_only=False).astype(np.int64)] = True
    seq = _sequences(steps, wanted[steps.jix] & (steps.state >= 0), collapse)
    got = _paths(seq, np.zeros(steps.size, dtype=np.int64))
    table, names = got["paths"], got["path_names"]
    return pa.table({"journey_id": steps.journey_ids.take(table.column("jix")), "length": table.column("length"),
                     "path": names.take(table.column("path_id"))})


@dataclass(frozen=True)
class _Sequences:
    """Kept steps sorted by (journey, step): journey index, state code, and where each journey starts."""

    jix: np.ndarray
    state: np.ndarray
    names: pa.Array       # state code -> name
    first: np.ndarray     # True on a journey's first kept step


def _sequences(steps: StepArrays, rows: np.ndarray, collapse: bool) -> _Sequences:
    """The selected rows (already in (journey, step) order); with `collapse`, a step equal to the one before is dropped."""
    jix, state = steps.jix[rows], steps.state[rows]
    first = np.ones(len(jix), dtype=bool)
    first[1:] = jix[1:] != jix[:-1]
    if collapse and len(jix):
        keep = first.copy()
        keep[1:] |= state[1:] != state[:-1]
        jix, state = jix[keep], state[keep]
        first = np.ones(len(jix), dtype=bool)
        first[1:] = jix[1:] != jix[:-1]
    return _Sequences(jix=jix, state=state, names=steps.names, first=first)


def _codes(column: pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
    """Integer codes of a string column (-1 for NULL) and the code -> value dictionary."""
    encoded = pc.dictionary_encode(column.combine_chunks())
    codes = pc.fill_null(encoded.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), encoded.dictionary.cast(pa.string())


def group(columns: list[np.ndarray], sizes: list[int]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Distinct rows of integer columns (each in [0, size)), how often each occurs, and each row's group.

    One mixed-radix int64 key (a single sort) when the sizes allow it, else a lexsort of the columns; the
    distinct rows come out in key order, as np.unique gives them.
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
        # a stable (merge) sort: keys led by the journey arrive nearly sorted, which it exploits
        # (7 M (journey, state) keys: 0.1 CPU-s against 1.5 for np.unique's quicksort and inverse)
        order = np.argsort(key, kind="stable")
        new = np.ones(n, dtype=bool)
        sorted_key = key[order]
        new[1:] = sorted_key[1:] != sorted_key[:-1]
    else:
        order = np.lexsort(columns[::-1])
        new = np.ones(n, dtype=bool)
        new[1:] = np.any([c[order][1:] != c[order][:-1] for c in columns], axis=0)
    starts = np.flatnonzero(new)
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(new) - 1
    return [c[order[starts]] for c in columns], np.diff(np.append(starts, n)), inverse


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
    cols, counts, _ = group([cls[seq.jix], prev, seq.state, nxt, heldout[seq.jix]],
                          [int(cls.max(initial=0)) + 1, n_symbols, n_states, n_symbols, 2])
    symbols = pa.concat_arrays([seq.names, pa.array([START], type=pa.string()), outcome_names])
    return pa.table({"cls": cols[0], "prev": symbols.take(pa.array(cols[1])), "state": seq.names.take(pa.array(cols[2])),
                     "next": symbols.take(pa.array(cols[3])), "heldout": cols[4].astype(bool), "c": counts})


def _reach(seq: _Sequences, cls: np.ndarray, outcome: np.ndarray, outcome_names: pa.Array) -> pa.Table:
    """(cls, state, outcome) -> journeys reaching the state, their visits to it, and journeys visiting it twice+."""
    n_states = len(seq.names)
    jix, state, visits = visits_per_state(seq.jix, seq.state, seq.first, n_states)
    (c, s, o), reached, member = group([cls[jix], state, outcome[jix]],
                                       [int(cls.max(initial=0)) + 1, n_states, len(outcome_names)])
    visit_sum = np.bincount(member, weights=visits, minlength=len(c)).astype(np.int64)
    repeats = np.bincount(member, weights=visits >= 2, minlength=len(c)).astype(np.int64)
    return pa.table({"cls": c, "state": seq.names.take(pa.array(s)), "outcome": outcome_names.take(pa.array(o)),
                     "reached": reached, "visits": visit_sum, "repeats": repeats})


def visits_per_state(jix: np.ndarray, state: np.ndarray, first: np.ndarray, n_states: int
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (journey, state) pairs of rows grouped by journey (`first` marks each journey's first row) and
    how many rows each has. Keyed by the journey's place in the rows, so the keys arrive nearly sorted and a
    merge sort all but skips the work (7 M steps: 0.1 CPU-s; keyed by jix, in random order, 1 s)."""
    place = np.cumsum(first) - 1
    key = np.sort(place * n_states + state, kind="stable")
    new = np.ones(len(key), dtype=bool)
    new[1:] = key[1:] != key[:-1]
    starts = np.flatnonzero(new)
    place_of, state_of = np.divmod(key[starts], n_states)
    return jix[np.flatnonzero(first)][place_of], state_of, np.diff(np.append(starts, len(key)))


def _paths(seq: _Sequences, cls: np.ndarray) -> dict[str, Any]:
    """Each journey's path id (engine.paths.path_ids), its number of steps and class; and the paths by id (one
    string per distinct path, not per journey: 1.1 M strings the per-journey table no longer carries at 10 M
    events)."""
    starts = np.flatnonzero(seq.first)
    names, path_id = paths.path_ids(seq.state, starts, seq.names)
    jix = seq.jix[starts]
    return {"paths": pa.table({"jix": jix, "cls": cls[jix], "path_id": path_id,
                               "length": np.diff(np.append(starts, len(seq.jix))).astype(np.int64)}),
            "path_names": names}


# Resolved steps of censored journeys (engine.journeys' journey_progress): a step entered at ts is resolved
# once ts + horizon <= data end, whatever its destination: by then either the next step or outcome event came
# (within `inactive_for` of ts) or the inactivity cut decided "dropped". Inclusion depends on the entry time
# only, so it cannot favour any destination. The last resolved step of a journey goes to its known outcome.
def count_partial_steps(steps: StepArrays, jr: Journeys, horizon_s: int | None) -> pa.Table:
    """(cls, state, next, c): resolved steps of the censored journeys with a journey_progress row, per class.

    A step's `next` is the journey's next step with a state, or its known outcome after its last one.
    `horizon_s` is the journey's `inactive_for`; without one (or with collapsed self-loops, whose hidden
    repeats can keep a state open past ts + inactive_for) no step of an open journey is resolved before
    its window ends, so the table is empty. A resolved step always has a destination (see engine.journeys:
    last step + inactive_for <= data end means the journey's end is known); a NULL one is an error.
    """
    empty = pa.table({"cls": pa.array([], pa.int64()), "state": pa.array([], pa.string()),
                      "next": pa.array([], pa.string()), "c": pa.array([], pa.int64())})
    if horizon_s is None:
        return empty
    open_ = jr.counted & jr.censored & jr.tracked
    at = np.flatnonzero(open_[steps.jix] & (steps.state >= 0))  # the open journeys' steps with a state, in order
    jix = steps.jix[at]
    last = np.ones(len(jix), dtype=bool)
    last[:-1] = jix[1:] != jix[:-1]
    # resolved: entered `horizon_s` or more before the data end, as one comparison with a per-journey bound (a
    # NULL data end: none); only the resolved steps' outcomes and next states are looked up
    latest = np.where(jr.data_end_us != NULL_TS, jr.data_end_us - int(horizon_s) * 1_000_000, NULL_TS)
    ts = steps.ts[at]
    resolved = np.flatnonzero((ts <= latest[jix]) & (ts != NULL_TS))
    del ts
    jix, last = jix[resolved], last[resolved]
    outcome = jr.outcome[jix]
    if np.any(last & (outcome < 0)):
        raise ValueError("a resolved step of an open journey has no destination")
    n_states = len(steps.names)
    state = steps.state[at]
    nxt = np.where(last, n_states + outcome, state[np.minimum(resolved + 1, len(state) - 1)])  # not last: the next
    if not len(nxt):
        return empty
    (c, s, n), counts, _ = group([jr.cls[jix], state[resolved], nxt],
                                  [int(jr.cls.max(initial=0)) + 1, n_states, n_states + len(jr.outcome_names)])
    symbols = pa.concat_arrays([steps.names, jr.outcome_names])
    return pa.table({"cls": c, "state": steps.names.take(pa.array(s)), "next": symbols.take(pa.array(n)), "c": counts},
                    schema=empty.schema)
