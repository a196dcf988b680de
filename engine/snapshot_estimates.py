"""Reach, paths and durations of every snapshot scope, estimated from every journey, open ones included.

engine.snapshot's completed-only numbers (reach_counts, paths, durations) look
at completed journeys alone; these keep the same quantities and change the
estimator, so a scope whose journeys are still in progress (the latest
periods, the days after a release, `all` near the data end) gets unbiased
numbers now instead of a window later:

* `reach_estimates`: P(the journey enters the state within its window | it
  started). Aalen–Johansen cumulative incidence of first entry
  (engine.incidence), with two competing causes: "entered the state" at its
  first visit, "ended without entering it" at the time its end became known
  (engine.snapshot_progress' `aj_t`); a journey still open and not yet in the
  state is censored at data end − start. An open journey that already
  visited the state counts as a visit: no waiting for its end.
* `path_estimates`: the share of journeys taking each (path, outcome), from the
  journeys whose path is resolved (end known by the data end), each weighted by
  1 / P(resolved by then) (engine.ipcw; the module says why that is unbiased).
* positivity: a journey that lasts the whole window resolves only once a
  journey of the scope has been followed that long, so paths and durations
  are "not estimable yet" in a scope without a complete journey, and reach
  (like `outcome_probabilities`) is P(… within `estimate_horizon_s`), the
  longest follow-up of the scope capped at the window;
* `duration_estimates`: median time to outcome (and length), overall and per
  outcome class, read off the IPCW (Kaplan–Meier) distribution, with a
  test-inversion interval. The completed-only median over journeys finished by
  the data end is biased short; this one is not.

When no journey of a scope is censored every estimate is the completed-only
number itself (reach: the same ratio; path shares: weights are all 1; medians:
taken from the completed-only block), so fully mature data is byte-identical.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import (
    arrow_scan,
    incidence,
    int_width,
    ipcw,
    loss_estimates,
    path_codes,
    path_estimate_totals,
    reach_visits,
    scope_pool,
    state_estimates,
    step_arrays,
    step_shares,
)
from engine.paths import SEP

ESTIMATORS = {
    "reach_estimates": ("aalen_johansen_first_entry: P(state entered within the window | start); open journeys "
                        "censored at data end - start unless already in the state; 95 % log(-log) interval"),
    "path_estimates": ("ipcw: share of (path, outcome) over journeys whose end is known by the data end, weighted "
                       "by 1 / P(follow-up >= time the end became known); Hajek ratio, sandwich 95 % interval; per "
                       "entry its sequence's share and conversion rate (all outcomes) and the rest's, Kish effective "
                       "n, and the entry's IPCW Kaplan-Meier medians (engine.path_estimate_totals)"),
    "resolved_shares": ("resolved_steps_ipcw: share of each step out of a state over the steps whose destination is "
                        "final (horizon passed since entry, or the journey's end known), each weighted by "
                        "1 / P(follow-up >= min(window, entry + horizon, end known)); journey-clustered sandwich se; "
                        "weight: the cell's IPCW mass (what the steps stand for, had every journey been followed)"),
    "loss_estimates": loss_estimates.DESCRIPTION,
    "duration_estimates": ("ipcw_kaplan_meier: median of the IPCW-weighted distribution (Kaplan-Meier in IPCW "
                           "form) of duration and length; Brookmeyer-Crowley 95 % interval for the duration"),
    "state_estimates": state_estimates.DESCRIPTION,
}

# One row per journey of the journey definition, ordered by class: what each estimate needs. `dur` follows the
# completed-only rule (engine.snapshot _jg_jour): a dropped journey's duration stops at its last step, whose
# time is end_ts for a censored journey (engine.journeys). Paths come from the steps (StepRows.paths); a completed
# journey's path id (engine.paths.path_ids, _jg_jour) spares hashing its path again (path_codes.of's `known`).
_ROWS_SQL = """
CREATE OR REPLACE TEMP TABLE _jg_est AS
SELECT r.jrow, r.cls, k.jix, k.journey_id, k.start_ts, k.censored, k.aj_t, k.aj_o,
       greatest(epoch(k.data_end - k.start_ts), 0)::DOUBLE AS follow, k.data_end,
       CASE WHEN k.censored THEN k.aj_o ELSE k.outcome END AS dest_o, k.tracked,
       CASE WHEN k.aj_o IS NOT NULL THEN k.aj_t END AS known_t,
       CASE WHEN NOT k.censored THEN jo.duration_s
            WHEN k.aj_o = $dropoff THEN greatest(epoch(coalesce(k.end_ts, k.start_ts) - k.start_ts), 0)
            ELSE k.aj_t END::DOUBLE AS dur, jo.path_id
FROM _jg_jkeys k JOIN {jrows} r USING (jix)
LEFT JOIN _jg_jour jo USING (jix)
"""
# {jrows}: (jix, cls, jrow) of every journey of _jg_jclass, jrow numbering them by (cls, journey_id)
_BY_ID = "(SELECT jix, cls, (row_number() OVER (ORDER BY cls, journey_id) - 1)::BIGINT AS jrow FROM _jg_jclass)"
# the same numbering by the ids' places in byte order (engine.step_arrays' id_rank): an integer sort, not a string one
_RANKS = "_jg_id_rank"
_BY_RANK = f"""(SELECT c.jix, c.cls, (row_number() OVER (ORDER BY c.cls, r.id_rank) - 1)::BIGINT AS jrow
               FROM _jg_jclass c JOIN {_RANKS} r USING (jix))"""
# … and numbered in numpy from each journey's class (engine.step_counts.Journeys.cls) and its rank
_JROWS = "_jg_jrows"


def r6(value: float | None) -> float | None:
    from engine.snapshot import r6 as round6

    return round6(value)


class _Rows:
    """The per-journey columns (numpy, ordered by class) and the first visit of each (journey, state)."""

    def __init__(self, con: Any, conversion: str, steps: step_shares.StepRows) -> None:
        t = arrow_scan.fetch(con, "SELECT jrow, cls, censored, aj_t, aj_o, follow, dur, path_id FROM _jg_est")  # not the ids
        jrow = t.column("jrow").to_numpy()  # numbers the rows 0..n-1: placing each row there is the sort
        cls = t.column("cls").to_numpy()
        self.cls = _placed(cls, jrow, int_width.index_type(int(cls.max(initial=0))))  # searched: int_width's
        self.censored = _placed(t.column("censored").to_numpy(zero_copy_only=False), jrow, bool)
        self.aj_t = _placed(t.column("aj_t").to_numpy(), jrow, float)
        self.follow = _placed(t.column("follow").to_numpy(), jrow, float)
        self.dur = _placed(pc.fill_null(t.column("dur"), np.nan).to_numpy(zero_copy_only=False), jrow, float)
        outcome, outcomes = _outcome_codes(t.column("aj_o"), jrow)
        known = _placed(pc.fill_null(t.column("path_id"), -1).to_numpy(zero_copy_only=False), jrow, np.int64)
        del t
        self.ended = outcome >= 0
        self.converted = np.zeros(len(jrow), dtype=bool) if conversion not in outcomes else (
            outcome == outcomes.index(conversion))
        # a path once the journey's end is known (completed, or open with its outcome decided), from its steps
        at, new_journey = steps._collapsed(~self.censored | self.ended)
        codes = path_codes.of(steps.row[at[new_journey]], steps.state[at], new_journey, len(jrow), steps.state_names,
                              known)
        self.length = codes.length.astype(float)
        self.has_path = (codes.code >= 0) & self.ended
        per_path = len(outcomes) + 1  # a key per (path, outcome or none)
        self.path_key = (codes.code.astype(np.int64) + 1) * per_path + outcome + 1  # a product: int64
        self.path_names = _KeyNames(codes, outcomes, per_path)
        self.seq_key = codes.code
        self.build_order = path_estimate_totals.BuildOrder.of(self.path_key, self.dur)  # every scope's, sorted once
        self.v_row, self.v_state, self.v_t, self.state_names = steps.first_visits()  # Visits' pairs: the same arrays


def _placed(values: np.ndarray, jrow: np.ndarray, dtype: type) -> np.ndarray:
    """`values` of rows fetched in any order, placed at their row number (jrow: a permutation of 0..n-1)."""
    out: np.ndarray = np.empty(len(jrow), dtype=dtype)
    out[jrow] = values
    return out


def _outcome_codes(aj_o: pa.ChunkedArray, jrow: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Per row (placed by jrow) its outcome's number (-1: none) and the outcomes, numbered by first appearance
    in row order: as dictionary-encoding the column sorted by row would (the numbers set the path keys' tie
    order). Each fetched chunk is encoded where it lies and only the numbers are placed: no string is copied."""
    chunks = [pc.dictionary_encode(c) for c in aj_o.chunks]
    if not chunks:
        return np.full(len(jrow), -1, dtype=np.int64), []
    unified = pa.chunked_array(chunks).unify_dictionaries()
    names = unified.chunk(0).dictionary
    code = _placed(np.concatenate([pc.fill_null(c.indices.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
                                   for c in unified.chunks]), jrow, np.int64)
    # where each outcome first appears (a pass per outcome: there are a handful)
    first = np.array([int(np.argmax(code == c)) for c in range(len(names))], dtype=np.int64)
    order = np.argsort(first, kind="stable")
    number = np.empty(len(names) + 1, dtype=np.int64)
    number[order] = np.arange(len(names), dtype=np.int64)
    number[-1] = -1  # code -1 (no outcome) picks the last slot
    return number[code], [str(o) for o in names.take(pa.array(order)).to_pylist()]


class _KeyNames(Sequence[str]):
    """`path_key` code -> "path SEP SEP outcome", spelled out only for the keys asked for (the shown ones)."""

    def __init__(self, codes: path_codes.PathCodes, outcomes: list[str], per_path: int) -> None:
        self.codes, self.outcomes, self.per_path = codes, outcomes, per_path

    def __len__(self) -> int:
        return (len(self.codes.first) + 1) * self.per_path

    @overload
    def __getitem__(self, key: int) -> str: ...
    @overload
    def __getitem__(self, key: slice) -> Sequence[str]: ...
    def __getitem__(self, key: int | slice) -> str | Sequence[str]:
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self)))]
        path, outcome = divmod(int(key), self.per_path)
        return (self.codes.text(path - 1) if path else "") + SEP + SEP + (self.outcomes[outcome - 1] if outcome else "")


def prepare(con: Any, journey: str, dropoff: str, cls: np.ndarray | None = None) -> None:
    """_jg_est: per journey, what the estimates need (after engine.snapshot's _jg_jour exists). Journeys are
    numbered by (class, journey_id) through the step arrays' id ranks when every journey has one. `cls`: per
    jix the class of each journey of _jg_jclass (-1 elsewhere), when the caller has it: the numbering is then
    made in numpy (the window over _jg_jclass, a join of every journey to its class, cost 0.25 CPU-s at 10 M
    events)."""
    steps = step_arrays.held(con, journey)
    rank = steps.id_rank if steps is not None else None
    if rank is None:
        con.execute(_ROWS_SQL.format(jrows=_BY_ID), {"dropoff": dropoff})
        return
    numbered = _numbered(cls, rank) if cls is not None else None
    if numbered is not None:
        con.register(_JROWS, arrow_scan.in_batches(numbered))
        try:
            con.execute(_ROWS_SQL.format(jrows=_JROWS), {"dropoff": dropoff})
        finally:
            con.unregister(_JROWS)
        return
    jix = np.flatnonzero(rank >= 0)
    con.register(_RANKS, pa.table({"jix": jix, "id_rank": rank[jix]}))
    try:
        whole = con.execute(f"SELECT count(*) FROM _jg_jclass ANTI JOIN {_RANKS} USING (jix)").fetchall()[0][0] == 0
        con.execute(_ROWS_SQL.format(jrows=_BY_RANK if whole else _BY_ID), {"dropoff": dropoff})
    finally:
        con.unregister(_RANKS)


def _numbered(cls: np.ndarray, rank: np.ndarray) -> pa.Table | None:
    """(jix, cls, jrow) of the journeys with a class, jrow numbering them by (cls, rank) as _BY_RANK does; None
    when one has no rank. Ranks are distinct places 0..m-1, so ordering by them is a scatter; the stable sort by
    class keeps that order within a class (on small integers: a radix sort)."""
    jix = np.flatnonzero(cls[: len(rank)] >= 0)
    if len(jix) != int((cls >= 0).sum()) or (rank[jix] < 0).any():
        return None
    by_rank = np.full(int(rank.max(initial=-1)) + 1, -1, dtype=np.int64)
    by_rank[rank[jix]] = jix
    by_rank = by_rank[by_rank >= 0]
    of = cls[by_rank]
    small = np.uint16 if int(of.max(initial=0)) < 1 << 16 else np.int64
    jix = by_rank[np.argsort(of.astype(small), kind="stable")]
    return pa.table({"jix": jix, "cls": cls[jix].astype(np.int64), "jrow": np.arange(len(jix), dtype=np.int64)})


class Inputs:
    """Everything the per-scope estimates read, built from the step arrays once: the resolved steps, the
    per-journey rows with each journey's path and first visits, and the visits per (journey, state). Built
    while engine.snapshot still holds the step arrays, which can go once this exists (the memory peak of a
    10 M-event build is the per-scope work, so nothing it does not need should be alive then)."""

    def __init__(self, con: Any, jc: Any, params: dict[str, Any]) -> None:
        step_rows = step_shares.StepRows(con, "_jg_est", {"journey": jc.name, "collapse": params["collapse"],
                                                          "horizon": params["horizon"]})
        self.rows = _Rows(con, jc.conversion_outcome, step_rows)
        self.visits = state_estimates.Visits.of(con, step_rows, "SELECT journey_id, jrow FROM _jg_est", jc.name)
        self.steps = step_rows.resolved()
        rising = not len(self.steps.row) or bool((np.diff(self.steps.row) >= 0).all())
        self.order = step_shares.JourneyOrder.of(self.steps) if rising else None  # (resolved(): by row)
        self.members = con.execute("SELECT sid, list(cls ORDER BY cls) FROM _jg_csid GROUP BY sid").fetchall()
        del step_rows
        pa.default_memory_pool().release_unused()  # the path strings' buffers, kept by the pool otherwise


def by_scope(inputs: Inputs, jc: Any, params: dict[str, Any], top_n: int) -> dict[int, dict[str, Any]]:
    """sid -> {reach_estimates, path_estimates, duration_estimates, resolved_shares, state_estimates} for every scope (medians
    of uncensored scopes are filled in by `payload_blocks` from the completed-only block)."""
    groups = scope_pool.same_members(inputs.members)
    sizes = [_journeys_in(inputs.rows.cls, classes) for classes, _ in groups]
    scopes = [_Scope(inputs, classes, jc, params, top_n) for classes, _ in groups]
    jobs = [scope_pool.Job((i, part), size * share, functools.partial(scope.part, part))
            for i, (scope, size) in enumerate(zip(scopes, sizes, strict=True)) for part, share in _PARTS.items()]
    # the parts of one scope add up to its size: two threads share the largest scope's parts (the other thread
    # idled while it ran alone) and smaller scopes' parts fill in where they fit in its memory
    done = scope_pool.run(jobs, budget=max(sizes, default=0) * sum(_PARTS.values()))
    return scope_pool.spread([_assembled(done[i, part] for part in _PARTS) for i in range(len(groups))], groups)


def _journeys_in(cls: np.ndarray, classes: list[int]) -> int:
    """How many journeys (rows ordered by class) the classes hold: a scope's size, which its memory follows."""
    return int(int_width.searchsorted(cls, classes, side="right").sum()
               - int_width.searchsorted(cls, classes, side="left").sum())


# A scope's independent parts and each one's share of the scope's CPU time (10 M daily increment, in tenths), which
# the pool reads as its share of the scope's size (whole numbers: the pool's running total comes back to 0 exactly)
_PARTS = {"reach": 4, "steps": 4, "states": 1, "paths": 1}
# a scope's blocks in the order one computation gave them (the payload's key order)
_KEYS = ("estimate_horizon_s", "loss_estimates", "reach_estimates", "resolved_shares", "state_estimates",
         "path_estimates", "duration_estimates")


def _assembled(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return {key: merged[key] for key in _KEYS}


class _Shared:
    """What several parts of a scope read: its rows, their follow-ups and the journeys' weights. The weights
    (state_estimates' for the ended journeys and path_estimates' for those with a path are the same numbers,
    each 1 / Ĝ(T_i) of the journey alone; none where nothing is estimable) are read off `follow_up` here,
    before any part runs, so only the steps part uses it afterwards: its lazily built tables are not shared
    between threads."""

    def __init__(self, rows: _Rows, classes: list[int]) -> None:
        self.lo = int_width.searchsorted(rows.cls, classes, side="left")
        self.hi = int_width.searchsorted(rows.cls, classes, side="right")
        self.take = (np.concatenate([np.arange(a, b) for a, b in zip(self.lo, self.hi)]) if len(classes)
                     else np.zeros(0, np.int64))
        self.follow = rows.follow[self.take]
        self.follow_up = ipcw.FollowUp(self.follow)  # one Ĝ for the steps' weights and the journeys'
        self.w = (self.follow_up.weights(rows.aj_t[self.take], rows.ended[self.take])
                  if not rows.censored[self.take].all() else None)


class _Scope:
    """One scope's blocks in parts (`_PARTS`) that may run on different threads, each a function of the scope's
    journeys alone. What several parts read is built once, by the first part that asks, and let go after the
    last one (a part's own temporaries are gone when it returns)."""

    def __init__(self, inputs: Inputs, classes: list[int], jc: Any, params: dict[str, Any], top_n: int) -> None:
        self.inputs, self.classes, self.jc, self.params, self.top_n = inputs, classes, jc, params, top_n
        self._lock = threading.Lock()
        self._left = len(_PARTS)
        self._shared: _Shared | None = None

    def part(self, name: str) -> dict[str, Any]:
        try:
            return getattr(self, f"_{name}")(self._built())
        finally:
            with self._lock:
                self._left -= 1
                if not self._left:
                    self._shared = None

    def _built(self) -> _Shared:
        with self._lock:
            if self._shared is None:
                self._shared = _Shared(self.inputs.rows, self.classes)
            return self._shared

    def _steps(self, s: _Shared) -> dict[str, Any]:
        """The loss block and the shares, which read the same per-group weights."""
        steps, window_s, horizon = self.inputs.steps, float(self.jc.window_s), self.params["horizon"]
        losses = [o for o in self.jc.outcome_names if o != self.jc.conversion_outcome]
        start, stop = _runs(steps.row, s.lo, s.hi)
        pick, pos = _members(steps.row, s.lo, s.hi)
        runs = step_shares.Runs(self.inputs.order, start, stop) if self.inputs.order is not None else None
        done = step_shares.counted(steps, pick, pos, s.follow, window_s, horizon, s.follow_up, runs)
        del pick, pos  # `done` holds the steps that count
        moves = step_shares.GroupWeights(done, len(steps.names))
        loss = loss_estimates.block(steps, done, s.follow, window_s, horizon, losses, moves)
        shares = step_shares.shares(steps, done.pick, done.pos, s.follow, window_s, horizon, done, moves)
        return {"loss_estimates": loss, "resolved_shares": shares}

    def _reach(self, s: _Shared) -> dict[str, Any]:
        window_s = float(self.jc.window_s)
        return {"estimate_horizon_s": horizon_reached(s.follow, window_s),
                "reach_estimates": _reach(self.inputs.rows, s.take, s.lo, s.hi, window_s)}

    def _states(self, s: _Shared) -> dict[str, Any]:
        return {"state_estimates": state_estimates.of_scope(self.inputs.rows, s.take, self.inputs.visits, s.lo,
                                                            s.hi, s.w)}

    def _paths(self, s: _Shared) -> dict[str, Any]:
        return _paths_and_durations(self.inputs.rows, s.take, self.top_n, s.w)


def _reach(rows: _Rows, take: np.ndarray, lo: np.ndarray, hi: np.ndarray, window_s: float) -> dict[str, Any]:
    """Aalen–Johansen first-entry incidence of every state visited in the scope."""
    if not len(take):
        return {}
    by_state = _by_state(rows)
    visits = by_state.scope(lo, hi)
    censored = bool(rows.censored[take].any())
    ended = rows.ended[take]
    shared = by_state.first_entries(take, visits, ended, window_s) if censored else None
    out = {}
    for state in np.flatnonzero(np.diff(visits.bounds)):
        run = slice(int(visits.bounds[state]), int(visits.bounds[state + 1]))
        out[rows.state_names[int(state)]] = _reach_entry(
            len(take), run.stop - run.start, shared.of(visits.pos[run], run) if shared else None)
    return dict(sorted(out.items()))


_BY_STATE: weakref.WeakKeyDictionary[Any, reach_visits.ByState] = weakref.WeakKeyDictionary()
_BY_STATE_LOCK = threading.Lock()


def _by_state(rows: _Rows) -> reach_visits.ByState:
    """The build's first visits grouped by state, built by the first scope that asks (the scopes run on
    threads: the other one waits for it) and kept while `rows` lives."""
    with _BY_STATE_LOCK:
        if rows not in _BY_STATE:
            _BY_STATE[rows] = reach_visits.ByState(rows.v_row, rows.v_state, rows.v_t, rows.aj_t,
                                                   len(rows.state_names))
        return _BY_STATE[rows]


def _runs(row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where the entries of a table ordered by journey row with a row in each class range [lo, hi) start and stop."""
    return int_width.searchsorted(row, lo, side="left"), int_width.searchsorted(row, hi, side="left")


def _members(row: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries of a table ordered by journey row whose row lies in the scope's class ranges [lo, hi), and each
    one's journey's place inside the scope (the concatenated ranges). Run by run: slices, no gather."""
    a, b = _runs(row, lo, hi)
    if not len(a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    places = int_width.index_type(len(row))  # positions < len(row); each journey's place < its row
    pick = np.concatenate([np.arange(x, y, dtype=places) for x, y in zip(a, b)])
    offsets = np.cumsum(hi - lo) - (hi - lo)  # where each class's rows start inside the scope
    # a Python int shift keeps the rows' type (a numpy int64 one would widen every place to int64)
    return pick, np.concatenate([row[x:y] - int(s - o) for x, y, s, o in zip(a, b, lo, offsets)])


def reach_estimate(end_t: np.ndarray, ended: np.ndarray, censored: bool, visit_row: np.ndarray,
                   visit_time: np.ndarray, window_s: float) -> dict[str, Any]:
    """One state's `reach_estimates` entry (engine.resolved recounts it with this too).

    `end_t`/`ended`: every journey of the scope (engine.snapshot_progress' aj_t, outcome known);
    `visit_row`/`visit_time`: the journeys that visited the state and their first visit."""
    inc = incidence.first_entry(end_t, ended, visit_row, visit_time, window_s) if censored else None
    return _reach_entry(len(end_t), len(visit_row), inc)


def _reach_entry(n: int, reached: int, inc: incidence.Incidence | None) -> dict[str, Any]:
    """The entry from the first-entry incidence (cause 0), or with nothing censored (`inc` None) the
    completed-only ratio and its binomial variance (what Aalen–Johansen reduces to)."""
    if inc is not None:
        est, var, low, up = float(inc.estimate[0]), float(inc.variance[0]), inc.lower[0], inc.upper[0]
    else:
        est = reached / n
        var = est * (1 - est) / n
        lows, ups = incidence.loglog_interval(np.array([est]), np.array([var]))
        low, up = lows[0], ups[0]
    return {"estimate": r6(est), "lower": r6(low), "upper": r6(up), "se": r6(np.sqrt(var)), "reached": reached}


def horizon_reached(follow: np.ndarray, window_s: float) -> int:
    """How far after the start the scope's journeys were followed (at most the window): reach and outcome
    incidence are P(… within this), so equal to the window's once a journey of the scope is complete."""
    return int(min(window_s, float(follow.max()))) if len(follow) else 0


NOT_YET = "not estimable yet: no journey of the scope has been followed for a whole window"


def _paths_and_durations(rows: _Rows, take: np.ndarray, top_n: int, w: np.ndarray | None) -> dict[str, Any]:
    """`path_estimates` and `duration_estimates`; `w`: the journeys' weights with an ended end (ipcw.weights)."""
    if w is None or not len(take):  # positivity: journeys lasting the whole window never resolve
        return {"path_estimates": {"top": [], "resolved": 0, "journeys": len(take), "note": NOT_YET},
                "duration_estimates": {"note": NOT_YET}}
    return path_estimate_totals.scope_block(path_estimate_totals.ScopeRows(
        known_t=rows.aj_t[take], ok=rows.has_path[take], follow=rows.follow[take], key=rows.path_key[take],
        seq=rows.seq_key[take], converted=rows.converted[take], censored=rows.censored[take], dur=rows.dur[take],
        length=rows.length[take], names=rows.path_names, build=rows.build_order, at=take), top_n,
        np.where(rows.has_path[take], w, 0.0))


def payload_blocks(est: Mapping[int, dict[str, Any]], sid: int, censored: int,
                   durations: Mapping[str, Any]) -> dict[str, Any]:
    """The scope's estimate blocks; with nothing censored the medians are the completed-only ones (same convention)."""
    block = est.get(sid) or {"reach_estimates": {}, "path_estimates": {"top": [], "resolved": 0, "journeys": 0},
                             "duration_estimates": {}, "resolved_shares": [], "estimate_horizon_s": 0,
                             "state_estimates": {}}
    if censored == 0 and "median_s" in block["duration_estimates"]:
        mine = block["duration_estimates"]
        block = {**block, "duration_estimates": {
            **_exact(mine, durations), "by_class": {k: _exact(mine["by_class"][k], durations["by_class"][k])
                                                    for k in ("converted", "lost")}}}
    return block


def _exact(mine: Mapping[str, Any], done: Mapping[str, Any]) -> dict[str, Any]:
    return {**mine, "median_s": done["median_s"], "median_length": done["median_length"]}
