"""Resolved-step shares weighted for entry time, with journey-clustered standard errors (`resolved_shares`).

`resolved_transitions` (engine.step_counts) counts a step of an open journey
once the drop-off horizon H has passed since it was entered. That choice
cannot favour a destination *given the entry time*, but it does favour steps
entered early in their journey: in a young scope only a journey's first days
are resolved. Where the next state depends on how far into the journey a step
happens (a quick visitor moves on differently from a slow one), the plain
share of a young scope then differs from the same scope's share once mature.

IPCW (engine.ipcw) removes that and lets more steps in: a step's
destination is final once H has passed since it was entered, or once its
journey's end is known (outcome event or drop-off decision, T after the
start: every step of that journey is final then), or at the window's end.
So a step entered s after its journey's start is counted iff the journey's
follow-up c ≥ τ = min(W, s + H, T) (without H, min(W, T); complete
journeys, c ≥ W, count every step) and is weighted by 1 / Ĝ(τ), Ĝ the
scope's follow-up distribution. τ depends on the journey alone, never on the
data end, so P(counted | journey) = G(τ) exactly. Positivity: a step whose
latest possible τ, min(W, s + H), exceeds every follow-up of the scope could
only ever be seen through an early end of its journey (G = 0 otherwise), so
such steps are left out altogether: in a young scope the share is over the
steps entered in the journeys' first (longest follow-up − H), the same
steps the unweighted rule can see; with a complete journey in the scope
(follow-up ≥ W) nothing is left out. The weighted share of a → b
is then unbiased for the share among all the scope's steps out of a, as if
every journey had been followed to its window's end; on a mature scope every
weight is 1 and the share is the plain count ratio.

Steps of one journey are not independent (a journey that loops through a
state contributes several steps), so the standard error is the sandwich
clustered by journey: Var p̂_b = Σ_j (Σ_{i∈j} w_i (1{dst_i = b} − p̂_b))² / (Σ w)².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import arrow_scan, int_width, ipcw
from engine.step_arrays import NULL_TS

ESTIMATOR = "resolved_steps_ipcw"
JOURNEYS_PER_FETCH = 200_000  # journey rows whose steps are windowed in one query (about 2 M steps at 10 M events)

# The steps a scope's resolved counts hold (engine.step_counts' rule, collapse included), from `{journeys}`:
# jrow, journey_id, start_ts, censored, tracked (an open journey has a journey_progress row), dest_o (the
# outcome after the last step: known outcome when open), known_t (when the journey's end became known, since its
# start; NULL while open), data_end. `s` is the entry time since the journey's start.
STEPS_SQL = """
WITH r AS (SELECT * FROM {journeys} WHERE jrow >= $lo AND jrow < $hi),
raw AS (SELECT s.journey_id, s.step, s.state, s.ts,
                    lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
             FROM journey_steps s SEMI JOIN r USING (journey_id)
             WHERE s.journey = $journey AND s.state IS NOT NULL),
st AS (SELECT journey_id, state, ts, lead(state) OVER (PARTITION BY journey_id ORDER BY step) AS nxt
       FROM raw WHERE NOT $collapse OR prev IS NULL OR prev <> state)
SELECT r.jrow, st.state AS src, coalesce(st.nxt, r.dest_o) AS dst, greatest(epoch(st.ts - r.start_ts), 0)::DOUBLE AS s,
       r.known_t
FROM st JOIN r USING (journey_id)
WHERE NOT r.censored OR (r.tracked AND (r.known_t IS NOT NULL
                                        OR ($horizon >= 0 AND st.ts + to_seconds(greatest($horizon, 0)) <= r.data_end)))
ORDER BY r.jrow, s, src, dst
"""


# What StepRows needs of each journey of `{journeys}` (a table like STEPS_SQL's, with engine.step_arrays' jix).
_JOURNEYS_SQL = """SELECT jrow, jix, epoch_us(start_ts) AS start_us, epoch_us(data_end) AS end_us, censored, tracked,
                          known_t, dest_o FROM {journeys}"""
_DAY_US = 86_400_000_000


class Steps:
    """The resolved steps (ordered by journey row) with codes for their source and destination."""

    def __init__(self, row: np.ndarray, s: np.ndarray, known_t: np.ndarray, src: np.ndarray, dst: np.ndarray,
                 names: list[str]) -> None:
        self.row, self.s, self.known_t, self.src, self.dst, self.names = row, s, known_t, src, dst, names

    @classmethod
    def query(cls, con: Any, journeys: str, params: dict[str, Any]) -> Steps:
        """STEPS_SQL itself: the reference the numpy path (`StepRows.resolved`) is tested against, and what
        engine.resolved recounts one scope with."""
        t = cls._fetch(con, journeys, params)
        both = pc.dictionary_encode(pa.concat_arrays([t.column("src").combine_chunks().cast(pa.string()),
                                                      t.column("dst").combine_chunks().cast(pa.string())]))
        codes = both.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        return cls(row=t.column("jrow").to_numpy().astype(np.int64), s=t.column("s").to_numpy().astype(float),
                   known_t=pc.fill_null(t.column("known_t"), np.nan).to_numpy(zero_copy_only=False).astype(float),
                   src=codes[: t.num_rows], dst=codes[t.num_rows:], names=[str(x) for x in both.dictionary.to_pylist()])

    @staticmethod
    def _fetch(con: Any, journeys: str, params: dict[str, Any]) -> pa.Table:
        """The steps of JOURNEYS_PER_FETCH journey rows at a time, in journey-row order: the two window
        functions over all of a 10 M-event log's steps outgrew the run's DuckDB memory limit at once."""
        n = int(con.execute(f"SELECT coalesce(max(jrow) + 1, 0) FROM {journeys}").fetchall()[0][0])
        sql = STEPS_SQL.format(journeys=journeys)
        parts = [arrow_scan.fetch(con, sql, {**params, "lo": lo, "hi": lo + JOURNEYS_PER_FETCH})
                 for lo in range(0, max(n, 1), JOURNEYS_PER_FETCH)]
        return pa.concat_tables(parts)


class StepRows:
    """Every step with a state of the journeys in a table like STEPS_SQL's, ordered by (journey row, step), in
    numpy: the resolved steps, each (journey, state)'s first visit and each journey's path all come from the
    build's one scan of the steps (engine.step_arrays), placed by journey row without a sort.

    Why not SQL: STEPS_SQL's two window functions sort every step by string journey ids, and the first
    visits need a third pass; at 10 M events those passes took most of the snapshot stage. The numbers are
    STEPS_SQL's to the bit (entry times as DuckDB's epoch of an interval: whole days, then the microseconds),
    which a test holds row for row.
    """

    def __init__(self, con: Any, journeys: str, params: dict[str, Any]) -> None:
        from engine import step_arrays

        steps = step_arrays.fetch(con, params["journey"])
        per = arrow_scan.fetch(con, _JOURNEYS_SQL.format(journeys=journeys))
        jrow = per.column("jrow").to_numpy().astype(np.int64)
        n = int(jrow.max(initial=-1)) + 1
        jix = per.column("jix").to_numpy().astype(np.int64)
        row_of = np.full(max(steps.size, int(jix.max(initial=-1)) + 1), -1, dtype=np.int64)
        row_of[jix] = jrow
        row, at, state = _by_row(steps.jix, steps.state, row_of, n)
        self.state_names = [str(x) for x in steps.names.to_pylist()]
        # rows < n and state codes < the states held in int32 (engine.int_width): every copy taken of them
        # below and in the estimates' inputs is half as large
        self.row, self.state = row, int_width.narrowed(state, len(self.state_names))
        del state
        self.n_rows = n
        ts = steps.ts[at]
        del at

        def column(name: str, fill: Any) -> np.ndarray:
            out = pc.fill_null(per.column(name), fill).to_numpy(zero_copy_only=False)
            placed = np.empty(n, dtype=out.dtype)
            placed[jrow] = out
            return placed

        start, end = column("start_us", 0).astype(np.int64), column("end_us", 0).astype(np.int64)
        self.s = _since_start(ts, start[self.row])
        self.known_t = column("known_t", np.nan).astype(float)
        self.keep = _kept(ts, self.row, end, column("censored", False).astype(bool), column("tracked", False).astype(bool),
                          self.known_t, int(params["horizon"]))
        dest = pc.dictionary_encode(per.column("dest_o").combine_chunks())  # NULL while the outcome is unknown
        self.dest_names = dest.dictionary.cast(pa.string())
        self.dest = np.full(n, -1, dtype=np.int64)
        self.dest[jrow] = pc.fill_null(dest.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        self.collapse, self.horizon = bool(params["collapse"]), params["horizon"]
        self._all: tuple[np.ndarray, np.ndarray] | None = None
        self._visits: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def visits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(journey row, state code, time of its first visit since the start, visits) per visited (journey, state),
        ordered by (row, state code); visits follow the collapse rule (engine.step_counts: with `collapse`, a
        step equal to the one before it is no new visit). One sort serves both: collapsing drops only a repeat
        of the step before it, so every (journey, state) pair keeps a step; first times are over every step."""
        if self._visits is None:
            k = max(len(self.state_names), 1)
            key = self.row.astype(np.int64) * k  # row * k can pass int32: the key is int64
            key += self.state
            order = np.argsort(key, kind="stable")  # keys led by the journey row arrive nearly sorted: a merge sort
            key = key[order]
            starts = np.flatnonzero(_starts(key))
            first = np.minimum.reduceat(self.s[order], starts) if len(starts) else np.zeros(0)
            if self.collapse and len(starts):
                visits = np.add.reduceat(self._stays()[order].astype(np.int64), starts)
            else:
                visits = np.diff(np.append(starts, len(key)))
            row, state = np.divmod(key[starts], k)
            self._visits = (int_width.narrowed(row, self.n_rows), int_width.narrowed(state, k), first,
                            int_width.narrowed(visits, len(key)))
        return self._visits

    def first_visits(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
        """(journey row, state code, time of its first visit since the start) per visited (journey, state),
        ordered by (row, state code), and the state names."""
        row, state, first, _ = self.visits()
        return row, state, first, self.state_names

    def _stays(self) -> np.ndarray:
        """Per step whether the collapse rule keeps it (the first of its journey, or a state unlike the one before)."""
        stays = np.ones(len(self.row), dtype=bool)
        np.not_equal(self.state[1:], self.state[:-1], out=stays[1:])
        stays[1:] |= self.row[1:] != self.row[:-1]
        return stays

    def _collapsed(self, select: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Positions (into the step arrays) of the steps the journey rule keeps: with `collapse`, a step equal to
        the one before it in its journey is dropped; `select`: only these journeys (a mask by journey row: whole
        journeys, so the kept steps are the unselected rule's, filtered)."""
        if self._all is None:
            at = np.flatnonzero(self._stays()) if self.collapse else np.arange(len(self.row))
            row = self.row[at]
            new_journey = np.ones(len(at), dtype=bool)
            np.not_equal(row[1:], row[:-1], out=new_journey[1:])
            self._all = (at, new_journey)
        if select is None:
            return self._all
        mine = select[self.row[self._all[0]]]
        return self._all[0][mine], self._all[1][mine]

    def resolved(self) -> Steps:
        """STEPS_SQL's rows: collapse repeats (if asked), each kept step's next state (else its journey's
        destination outcome), the resolution rule; names shared by states and outcomes."""
        at, new_journey = self._collapsed()
        if len(at) == len(self.row):  # every step (no collapse, or nothing to collapse): no copies to take from
            row, state, s, keep = self.row, self.state, self.s, self.keep
        else:
            row, state, s, keep = self.row[at], self.state[at], self.s[at], self.keep[at]
        names = list(self.state_names)
        index = {name: i for i, name in enumerate(names)}
        dest_code = np.array([index.setdefault(str(o), len(index)) for o in self.dest_names.to_pylist()], dtype=np.int64)
        names = list(index)
        last = np.ones(len(row), dtype=bool)
        last[:-1] = new_journey[1:]
        dst = np.empty(len(row), dtype=int_width.index_type(len(names)))
        dst[~last] = state[1:][~last[:-1]]
        dest = self.dest[row[last]]
        dst[last] = np.where(dest >= 0, dest_code[np.maximum(dest, 0)] if len(dest_code) else -1, -1)
        if (dst[keep] < 0).any():  # STEPS_SQL would give a NULL destination: the journey tables disagree
            raise ValueError("resolved steps: a resolved last step has no destination")
        kept = row[keep]
        return Steps(row=kept, s=s[keep], known_t=self.known_t[kept], src=state[keep], dst=dst[keep], names=names)


def shares(steps: Steps, pick: np.ndarray, pos: np.ndarray, follow: np.ndarray, window_s: float,
           horizon_s: int, done: Counted | None = None, moves: GroupWeights | None = None) -> list[dict[str, Any]]:
    """`resolved_shares` of one scope: `pick` selects its steps, `pos` their journey's place in `follow`
    (`done`: `counted` of the same, when the caller has it; `moves`: its GroupWeights, B taken here)."""
    from engine.snapshot import r6

    done = done or counted(steps, pick, pos, follow, window_s, horizon_s)
    if not len(done.pick):
        return []
    k = len(steps.names)
    cell = steps.src[done.pick].astype(np.int64, copy=False)  # (source, destination) codes < k²
    total = np.bincount(cell, weights=done.w, minlength=k)
    cell *= k
    cell += steps.dst[done.pick]
    mass = np.bincount(cell, weights=done.w, minlength=k * k)
    n = np.bincount(cell, minlength=k * k)
    del cell
    of_src = total[np.arange(k * k) // k]
    share = np.divide(mass, of_src, out=np.zeros(k * k), where=of_src > 0)  # per cell, not per step
    var = _clustered_var(done, steps, share, moves)
    out = []
    for c in np.flatnonzero(n):
        a, b = divmod(int(c), k)
        out.append({"from": steps.names[a], "to": steps.names[b], "count": int(n[c]), "share": r6(mass[c] / total[a]),
                    "se": r6(np.sqrt(var[c]) / total[a]), "weight": r6(mass[c])})
    return sorted(out, key=lambda e: (e["from"], e["to"]))


@dataclass(frozen=True)
class Counted:
    """A scope's steps that count: positions into the step arrays, their journeys' places, their IPCW weights,
    and their groups, each numbered in (journey place, state) order as np.unique would: the (journey, source
    state) group of each step (`group_inv`) with each group's journey place and source state, and the
    (journey, source, destination) groups as the steps in that order (`cell_order`, steps of one group in
    their own order) with the first step of each group marked (`cell_new`).
    `resolved_shares` and engine.loss_estimates read the same steps, weights and groups."""

    pick: np.ndarray
    pos: np.ndarray
    w: np.ndarray
    group_inv: np.ndarray
    group_pos: np.ndarray
    group_state: np.ndarray
    cell_order: np.ndarray
    cell_new: np.ndarray


def counted(steps: Steps, pick: np.ndarray, pos: np.ndarray, follow: np.ndarray, window_s: float,
            horizon_s: int, follow_up: ipcw.FollowUp | None = None, runs: Runs | None = None) -> Counted:
    """The steps of a scope that count (positivity, see the module docstring), weighted 1 / Ĝ(τ) (`follow_up`:
    the scope's ipcw.FollowUp of `follow`, when the caller weights its journeys with it too; `runs`: `pick` as
    runs of whole journeys with the build's JourneyOrder, whose groups are then read off, not sorted again)."""
    if len(pick):
        latest = steps.s[pick]  # a copy: the ops below work in place (at 10 M events a step array is ~80 MB)
        if horizon_s >= 0:
            latest += horizon_s
            np.minimum(latest, window_s, out=latest)
        else:
            latest.fill(window_s)
        inside = latest <= follow.max()  # positivity: a step some journey of the scope could resolve by its horizon
        if not inside.all():
            pick, pos, latest = pick[inside], pos[inside], latest[inside]
            runs = None  # some journeys keep part of their steps: those are sorted here
        del inside
        tau = steps.known_t[pick]
        np.fmin(latest, tau, out=tau)  # every step of a journey whose end is known is resolved then
        del latest
        w = (follow_up or ipcw.FollowUp(follow)).weights(tau)
        del tau
    else:
        w = np.zeros(0)
    groups = runs.groups(steps, pick, pos) if runs is not None and len(pick) else _groups(steps, pick, pos)
    return Counted(pick, pos, w, *groups)


@dataclass(frozen=True)
class JourneyOrder:
    """Every resolved step's place in the stable (journey row, source, destination) order, built once per build.

    A scope's steps are whole journeys' runs of the step arrays, and its journey places rise with the rows, so
    its steps' stable sort by (journey place, source, destination) is this order restricted to its runs: each
    run's sorted steps are the run's own, shifted, and each group start the same (`Runs.groups`). Sorting once
    for the build saves a sort per scope (at 10 M events the scopes hold every step about four times)."""

    shift: np.ndarray  # the sorted slot i holds step i + shift[i] (moves stay within a journey: a small int)
    new: np.ndarray    # uint8 per sorted slot: 1 starts a (journey, source, destination) group, 2 a (journey,
                       # source) group too (held while the scopes run: one byte a step, not two)

    @classmethod
    def of(cls, steps: Steps) -> JourneyOrder:
        k = len(steps.names)
        key = steps.row.astype(np.int64) * k
        key += steps.src
        key *= k
        key += steps.dst
        order = np.argsort(key, kind="stable")
        key = key[order]
        new = _starts(key).astype(np.uint8)
        key //= k
        new += _starts(key)
        del key
        order -= np.arange(len(order))
        reach = int(np.abs(order).max(initial=0))  # less than a journey's steps
        return cls(order.astype(np.min_scalar_type(-reach - 1)), new)


@dataclass(frozen=True)
class Runs:
    """A scope's steps as runs [start, stop) of the step arrays, each holding whole journeys, ascending."""

    order: JourneyOrder
    start: np.ndarray
    stop: np.ndarray

    def groups(self, steps: Steps, pick: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, ...]:
        """`_groups(steps, pick, pos)` for `pick` the concatenated runs, read off the build's order."""
        if len(pick) != int((self.stop - self.start).sum()):
            raise ValueError("Runs.groups: the picked steps are not the runs")
        o = self.order
        cut = [slice(int(a), int(b)) for a, b in zip(self.start, self.stop)]
        order = np.arange(len(pick), dtype=int_width.index_type(len(pick)))  # places < len(pick): int32
        order += o.shift[cut[0]] if len(cut) == 1 else np.concatenate([o.shift[c] for c in cut])  # (small ints)
        flags = o.new[cut[0]] if len(cut) == 1 else np.concatenate([o.new[c] for c in cut])
        cell_new, new = flags >= 1, flags == 2
        del flags
        inverse = np.empty(len(order), dtype=int_width.index_type(len(order)))
        inverse[order] = _numbers(new)
        first = order[new]
        return inverse, pos[first], steps.src[pick[first]], order, cell_new


def _groups(steps: Steps, pick: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, ...]:
    """Counted's groups from one stable sort of the steps by (journey place, source, destination); the
    (journey, source) groups are runs of the same order, so one sort serves both. Steps come nearly sorted
    (by journey), where timsort is close to linear and np.unique's quicksort is not; sorting packed int64
    values or radix-sorting the state codes measured no faster at 10 M events."""
    k = len(steps.names)
    src = steps.src[pick]
    key = pos.astype(np.int64) * k
    key += src
    key *= k
    key += steps.dst[pick]
    order = np.argsort(key, kind="stable")
    key = key[order]
    cell_new = _starts(key)
    key //= k
    new = _starts(key)
    del key
    inverse = np.empty(len(order), dtype=int_width.index_type(len(order)))
    inverse[order] = _numbers(new)
    first = order[new]
    return inverse, pos[first], src[first], order, cell_new


class GroupWeights:
    """Per (journey, source state) group of a scope's counted steps its weight B = Σ w, and per source state Σ B²:
    engine.loss_estimates' B_js and `bb` moment are `_clustered_var`'s B_ja and Σ_j B_ja², the same sums in the
    same order, so a scope computes them once. `take` hands B to its last reader and drops it here (a per-group
    array: ~65 MB at 10 M events, held no longer than before)."""

    def __init__(self, done: Counted, k: int) -> None:
        self._b: np.ndarray | None = np.bincount(done.group_inv, weights=done.w)
        self.sum_b2 = np.bincount(done.group_state, weights=self._b ** 2, minlength=k)

    @property
    def b(self) -> np.ndarray:
        if self._b is None:
            raise ValueError("GroupWeights: B was taken")
        return self._b

    def take(self) -> np.ndarray:
        b, self._b = self.b, None
        return b


def _numbers(new: np.ndarray) -> np.ndarray:
    """Each sorted step's group number, from the mask of group starts (in place: no second step-sized array). The
    mask converted first, then summed in place: a running sum of booleans converts them a small buffer at a time,
    which took 1.6× as long (at 10 M events the scopes number every step about four times)."""
    out = new.astype(int_width.index_type(len(new)))  # numbers < len(new)
    np.cumsum(out, out=out, dtype=out.dtype)  # summed in its own type (cumsum would widen int32 to int64)
    out -= 1
    return out


def _starts(ordered: np.ndarray) -> np.ndarray:
    """Where a run of equal values begins in a sorted array."""
    new = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    return new


def _clustered_var(done: Counted, steps: Steps, share: np.ndarray, moves: GroupWeights | None = None) -> np.ndarray:
    """Per cell (a, b): Σ_j (A_jb − p_b B_ja)² with A = Σ w·1{b}, B = Σ w over journey j's steps out of a.
    Sums add in np.unique's order: each group's steps in step order, each cell's journeys in journey order.
    Per-group arrays are dropped as soon as used (the all-data scope's are each ~70 MB at 10 M events).
    `moves`: the scope's GroupWeights (B is taken from it), when the caller has them."""
    k = len(steps.names)
    moves = moves or GroupWeights(done, k)
    sum_b2 = moves.sum_b2
    b_sum = moves.take()  # B_ja
    del moves
    first = done.cell_order[done.cell_new]  # each (journey, cell) group's first step
    ab = b_sum[done.group_inv[first]]
    del b_sum
    at = done.pick[first]
    del first
    a_cell = steps.src[at].astype(np.int64, copy=False) * k
    a_cell += steps.dst[at]
    del at
    a_sum = np.bincount(_numbers(done.cell_new), weights=done.w[done.cell_order])  # A_jb
    ab *= a_sum
    sum_ab = np.bincount(a_cell, weights=ab, minlength=k * k)
    del ab
    a_sum *= a_sum
    sum_a2 = np.bincount(a_cell, weights=a_sum, minlength=k * k)
    # Σ_j (A − pB)² = Σ_j A² − 2p Σ_j A·B + p² Σ_j B² (journeys with B > 0 and no b-step have A = 0)
    cell_src = np.arange(k * k) // k
    return np.maximum(sum_a2 - 2 * share * sum_ab + share ** 2 * sum_b2[cell_src], 0.0)


def _by_row(jix: np.ndarray, state: np.ndarray, row_of: np.ndarray,
            n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(journey row, position in the step arrays, state) of every step with a state whose journey has a row,
    ordered by (row, step). Steps arrive in runs of one journey, in step order (engine.step_arrays), so the runs
    are put in row order (stably: a journey's runs, were it ever split, keep theirs) and each one's positions
    follow: a sort of the journeys, none of the steps. Rows are the runs' rows repeated, states read once (the
    NULL check needs them): not looked up again step by step (0.1 CPU-s at 10 M events)."""
    if not len(jix):
        return np.zeros(0, dtype=int_width.index_type(n)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=state.dtype)
    starts = np.flatnonzero(_starts(jix))
    lens = np.diff(np.append(starts, len(jix)))
    run_row = row_of[jix[starts]]
    runs = np.flatnonzero(run_row >= 0)
    runs = runs[np.argsort(run_row[runs], kind="stable")]
    size = lens[runs]
    at = np.arange(int(size.sum()), dtype=np.int64)
    at += np.repeat(starts[runs] - (np.cumsum(size) - size), size)  # each run's slots shifted to where it starts
    row, of = np.repeat(int_width.narrowed(run_row[runs], n), size), state[at]  # rows < n: int32 (int_width)
    if (of < 0).any():  # NULL states are no steps here
        some = of >= 0
        row, at, of = row[some], at[some], of[some]
    return row, at, of


def _since_start(ts: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Each step's entry time since its journey's start, in seconds, as DuckDB's epoch of the interval (whole days,
    then the microseconds); 0 for an unknown time or one before the start."""
    days, micros = np.divmod(ts - start, _DAY_US)
    s = days.astype(np.float64)
    s *= 86400.0
    rest = micros.astype(np.float64)
    rest /= 1e6
    s += rest
    np.maximum(s, 0.0, out=s)
    s[ts == NULL_TS] = 0.0
    return s


def _kept(ts: np.ndarray, row: np.ndarray, end: np.ndarray, censored: np.ndarray, tracked: np.ndarray,
          known_t: np.ndarray, horizon: int) -> np.ndarray:
    """STEPS_SQL's rule per step: a complete journey's steps, an open one's (with a journey_progress row) once its
    end is known, else those entered `horizon` before the data end. As one comparison per step: the latest entry
    time kept per journey (+inf: all, -inf: none, else data end - horizon), an unknown time counting as never
    resolved (just below +inf, which no data end reaches)."""
    top, bottom = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    latest = np.full(len(end), bottom, dtype=np.int64)
    if horizon >= 0:
        latest[tracked] = end[tracked] - horizon * 1_000_000
    latest[~censored | (tracked & ~np.isnan(known_t))] = top
    null = ts == NULL_TS
    if null.any():
        ts = np.where(null, top - 1, ts)
    return ts <= latest[row]
