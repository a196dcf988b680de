"""Paths and durations of one scope from journeys still in progress: shares, sequence totals, medians (issue 14).

engine.snapshot_estimates' `path_estimates` gives the IPCW share of each
(path, outcome) entry over the journeys whose end is known by the data end
(engine.ipcw: weight w_i = 1 / Ĝ(T_i)). The path-quality detector also needs,
per shown entry, what the completed-only block gives as `sequence_count`,
`sequence_conversions` and the entry's medians; here they are, same
estimator:

* the sequence's share of the scope's journeys, all its outcomes together:
  Hájek W_s / W with W_s = Σ_{i on s} w_i (sandwich se as engine.ipcw.shares);
* its conversion rate r_s = Σ_{i on s} w_i y_i / W_s (y: converted), and the
  rest's r_rest over every other resolved journey, each with the sandwich
  variance Σ w_i² (y_i − r)² / W² (a journey is its own cluster: one row each);
* each side's effective n, Kish's (Σ w)² / Σ w²: what the weighted journeys
  are worth as a simple random sample (the count itself when all weights are 1);
* the entry's own median duration and length: the IPCW Kaplan–Meier median of
  its journeys (engine.ipcw.median, as the scope's `duration_estimates`).

Everything is grouped by code with bincount over the scope's rows: no loop over
journeys (only over the ≤ top_n shown entries). With every weight 1 (nothing
censored) each number is the completed-only count ratio or sample median.
`scope_block` is also what engine.resolved recounts one scope with, on rows
read journey by journey from the journey tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import ipcw, sorting
from engine.paths import SEP

ESTIMATOR = ipcw.ESTIMATOR


@dataclass(frozen=True)
class ScopeRows:
    """One scope's journeys (any order): what the estimates read of each."""

    known_t: np.ndarray    # when the journey's end became known, since its start (follow-up while unknown)
    ok: np.ndarray         # its end is known by the data end and it has a path
    follow: np.ndarray     # data end − start
    key: np.ndarray        # code of its (path, outcome) in `names`
    seq: np.ndarray        # code of its path alone (any coding: equal paths, equal codes)
    converted: np.ndarray  # it ended in the conversion outcome
    censored: np.ndarray   # it started less than a window before the data end
    dur: np.ndarray        # duration (engine.snapshot's rule)
    length: np.ndarray     # steps on its path
    names: Sequence[str]   # key code -> path SEP SEP outcome
    build: BuildOrder | None = None  # the build's keys and durations ordered once, with `at`
    at: np.ndarray | None = None     # each journey's row in the build, ascending (with `build`)


@dataclass(frozen=True)
class BuildOrder:
    """A build's journeys' (path, outcome) keys ranked and durations ordered once. A scope's journeys are build
    rows, ascending, so its distinct keys are the build's that it holds (np.unique's values and inverse, read off
    by a count) and its rows in stable duration order are the build's order restricted to them (ties in row
    order either way): no sort per scope."""

    keys: np.ndarray       # the distinct keys, ascending
    key_rank: np.ndarray   # per build row its key's place in `keys`
    dur_order: np.ndarray  # build rows by duration (stable; NaN last, as np.argsort)

    @classmethod
    def of(cls, key: np.ndarray, dur: np.ndarray) -> BuildOrder:
        keys, rank = np.unique(key, return_inverse=True)
        small = np.int32 if len(key) < 2 ** 31 else np.int64  # held while the scopes run: half the memory
        return cls(keys, rank.reshape(-1).astype(small), np.argsort(dur, kind="stable").astype(small))

    def unique(self, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """np.unique(key[at], return_inverse=True)."""
        rank = self.key_rank[at]
        present = np.bincount(rank, minlength=len(self.keys)) > 0
        return self.keys[present], (np.cumsum(present) - 1)[rank]

    def by_duration(self, at: np.ndarray, sub: np.ndarray) -> np.ndarray:
        """sub[np.argsort(dur[at[sub]], kind="stable")] for `at` ascending and `sub` ascending places in it."""
        place = np.full(len(self.key_rank), -1, dtype=np.int64)
        place[at[sub]] = sub
        place = place[self.dur_order]
        return place[place >= 0]


def r6(value: float | None) -> float | None:
    from engine.snapshot import r6 as round6

    return round6(value)


def scope_block(rows: ScopeRows, top_n: int, w: np.ndarray | None = None) -> dict[str, Any]:
    """`path_estimates` (top entries with their sequence totals and medians) and `duration_estimates` of a
    scope with at least one complete journey (positivity is the caller's check). `w`: the journeys'
    ipcw.weights(known_t, ok, follow), when the caller has them."""
    ok = rows.ok
    w = ipcw.weights(rows.known_t, ok, rows.follow) if w is None else w
    if rows.build is not None and rows.at is not None:
        keys, inverse = rows.build.unique(rows.at[ok])
    else:
        keys, inverse = np.unique(rows.key[ok], return_inverse=True)
        inverse = inverse.reshape(-1)
    sh = ipcw.shares(inverse, w[ok], len(keys))
    chosen = top_entries(sh.estimate, keys, rows.names, top_n)
    seq_of_key = np.empty(len(keys), dtype=np.int64)
    seq_of_key[inverse] = rows.seq[ok]
    w_ok, dur_ok, len_ok = w[ok], rows.dur[ok], rows.length[ok]
    totals = _Totals(w_ok, rows.converted[ok], rows.seq[ok], seq_of_key[chosen])
    top = []
    for i, mine in zip(chosen, _rows_of(inverse, chosen, len(keys))):  # ≤ top_n entries, their medians apart
        path, outcome = rows.names[int(keys[i])].rsplit(SEP + SEP, 1)
        d, n = ipcw.median(dur_ok[mine], w_ok[mine]), ipcw.median(len_ok[mine], w_ok[mine])
        top.append({"path": path.split(SEP), "outcome": outcome, "share": r6(sh.estimate[i]), "lower": r6(sh.lower[i]),
                    "upper": r6(sh.upper[i]), "se": r6(sh.se[i]), "resolved": int(sh.resolved[i]),
                    "median_duration_s": r6(d.estimate), "median_length": r6(n.estimate),
                    **totals.entry(int(seq_of_key[i]))})
    paths = {"top": top, "resolved": int(ok.sum()), "journeys": len(ok),
             "complete": int((ok & ~rows.censored).sum()), **totals.scope()}
    return {"path_estimates": paths, "duration_estimates": _durations(rows, w)}


def _rows_of(inverse: np.ndarray, chosen: list[int], n_keys: int) -> list[np.ndarray]:
    """For each chosen key its rows, ascending: np.flatnonzero(inverse == i) for every i, from one pass over the
    rows and one stable sort of the chosen ones' (not a pass and three masked copies per entry)."""
    slot = np.full(n_keys, -1, dtype=np.int64)
    slot[chosen] = np.arange(len(chosen))
    of_row = slot[inverse]
    hit = np.flatnonzero(of_row >= 0)
    of_hit = of_row[hit]
    grouped = hit[sorting.stable_order(of_hit)]  # stable: each entry's rows stay ascending
    bounds = np.concatenate(([0], np.cumsum(np.bincount(of_hit, minlength=len(chosen)))))
    return [grouped[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _durations(rows: ScopeRows, w: np.ndarray) -> dict[str, Any]:
    """Medians overall and per class. One sort of the resolved rows alone (the others weigh 0; a stable sort of
    a subset keeps its ties in the rows' order, as sorting every row does), each class its rows of that order."""
    sub = np.flatnonzero(rows.ok)
    if rows.build is not None and rows.at is not None:
        by_dur = rows.build.by_duration(rows.at, sub)
    else:
        by_dur = sub[np.argsort(rows.dur[sub], kind="stable")]
    by_len = sub[sorting.stable_order(rows.length[sub])]
    conv_d, conv_l = rows.converted[by_dur], rows.converted[by_len]
    return {**_medians(rows, w, by_dur, by_len),
            "by_class": {"converted": _medians(rows, w, by_dur[conv_d], by_len[conv_l]),
                         "lost": _medians(rows, w, by_dur[~conv_d], by_len[~conv_l])}}


def _medians(rows: ScopeRows, w: np.ndarray, by_dur: np.ndarray, by_len: np.ndarray) -> dict[str, Any]:
    d = ipcw.median(rows.dur, w, order=by_dur)
    n = ipcw.median(rows.length, w, order=by_len)
    return {"median_s": r6(d.estimate), "median_s_lower": r6(d.lower), "median_s_upper": r6(d.upper),
            "median_length": r6(n.estimate), "resolved": d.resolved}


def top_entries(share: np.ndarray, keys: np.ndarray, names: Sequence[str], top_n: int) -> list[int]:
    """The `top_n` largest shares, ties by name: only shares at or above the top_n-th largest are sorted
    (a scope can hold a million distinct paths)."""
    top_n = max(int(top_n), 0)
    if not top_n or not len(share):
        return []
    floor = np.partition(share, len(share) - top_n)[len(share) - top_n] if len(share) > top_n else -np.inf
    candidates = np.flatnonzero(share >= floor)
    return sorted(candidates.tolist(), key=lambda i: (-share[i], names[int(keys[i])]))[:top_n]


class _Totals:
    """Weighted sums Σw, Σw·y, Σw², Σw²·y over the resolved journeys: of the scope, and of each shown sequence
    (`targets`); every share, rate, sandwich variance and Kish n below is a function of them."""

    def __init__(self, w: np.ndarray, y: np.ndarray, seq: np.ndarray, targets: np.ndarray) -> None:
        self.targets = np.unique(targets)
        y = y.astype(float)
        cols = np.stack([w, w * y, w * w, w * w * y, np.ones(len(w)), y])  # the last two: raw counts
        self.all = cols.sum(axis=1)
        at = np.searchsorted(self.targets, seq)
        hit = at < len(self.targets)
        hit[hit] = self.targets[at[hit]] == seq[hit]
        # the shown sequences' rows gathered once (w, y), their columns made from those: the same products
        idx = np.flatnonzero(hit)
        at_h, w_h, y_h = at[idx], w[idx], y[idx]
        w2_h = w_h * w_h
        mine = (w_h, w_h * y_h, w2_h, w2_h * y_h, np.ones(len(idx)), y_h)
        self.seq = np.stack([np.bincount(at_h, weights=c, minlength=len(self.targets)) for c in mine])

    def scope(self) -> dict[str, Any]:
        rate, var, n_eff = _rate(self.all)
        return {"conversion_rate": r6(rate), "conversion_se": r6(np.sqrt(var)), "n_eff": r6(n_eff)}

    def entry(self, seq: int) -> dict[str, Any]:
        mine = self.seq[:, int(np.searchsorted(self.targets, seq))]
        rest = self.all - mine
        w, w2 = float(self.all[0]), float(self.all[2])
        p = float(mine[0]) / w if w > 0 else 0.0
        # engine.ipcw.shares' sandwich; the rest's Σw² is a difference of sums, so it is clipped at 0
        share_var = (mine[2] * (1 - p) ** 2 + max(w2 - mine[2], 0.0) * p ** 2) / w ** 2 if w > 0 else 0.0
        rate, var, n_eff = _rate(mine)
        rest_rate, rest_var, rest_n = _rate(rest)
        return {"sequence_share": r6(p), "sequence_share_se": r6(np.sqrt(share_var)),
                "sequence_resolved": int(round(mine[4])), "sequence_converted": int(round(mine[5])),
                "sequence_n_eff": r6(n_eff), "conversion_rate": r6(rate), "conversion_se": r6(np.sqrt(var)),
                "rest_conversion_rate": r6(rest_rate), "rest_conversion_se": r6(np.sqrt(rest_var)),
                "rest_n_eff": r6(rest_n)}


def _rate(s: np.ndarray) -> tuple[float, float, float]:
    """Hájek rate Σwy / Σw, its sandwich variance Σw²(y − r)² / (Σw)² (y is 0/1), Kish's n; zeros when empty."""
    w, wy, w2, w2y = (float(x) for x in s[:4])
    if w <= 0:
        return 0.0, 0.0, 0.0
    r = wy / w
    return r, max(w2y * (1 - 2 * r) + r * r * w2, 0.0) / (w * w), w * w / w2


# One scope's journeys for the recount (engine.resolved): `{scope}` is its `sc` CTE (journey columns, journey_progress
# joined). The snapshot's rules: the end is known for a complete journey, or an open one whose known end is past;
# its path is its steps with a state (repeats collapsed when asked); a dropped journey's duration stops at its
# last step (engine.snapshot `_jg_jour`, or end_ts, the last step, of an open one), another outcome's at its end.
_ROWS_SQL = """
WITH {scope},
raw AS (SELECT s.journey_id, s.step, s.state, lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
        FROM journey_steps s JOIN sc USING (journey_id) WHERE s.journey = ? AND s.state IS NOT NULL),
jour AS (SELECT journey_id, string_agg(state, ? ORDER BY step) AS path, count(*) AS len
         FROM raw WHERE NOT ? OR prev IS NULL OR prev <> state GROUP BY journey_id),
last AS (SELECT journey_id, max(s.ts) AS last_ts FROM journey_steps s JOIN sc USING (journey_id)
         WHERE s.journey = ? GROUP BY journey_id),
k AS (SELECT *, CASE WHEN NOT censored THEN end_ts WHEN known_end_ts <= data_end THEN known_end_ts END AS end_k,
             CASE WHEN NOT censored THEN outcome WHEN known_end_ts <= data_end THEN known_outcome END AS o FROM sc)
SELECT k.censored, greatest(epoch(coalesce(k.end_k, k.data_end) - k.start_ts), 0)::DOUBLE AS t,
       CASE WHEN k.censored THEN greatest(epoch(k.data_end - k.start_ts), 0) ELSE ? END::DOUBLE AS follow,
       k.o, jour.path, coalesce(jour.len, 0) AS len,
       CASE WHEN NOT k.censored THEN epoch(CASE WHEN k.o = ? THEN last.last_ts ELSE k.end_ts END - k.start_ts)
            WHEN k.o = ? THEN greatest(epoch(coalesce(k.end_ts, k.start_ts) - k.start_ts), 0)
            ELSE greatest(epoch(coalesce(k.end_k, k.data_end) - k.start_ts), 0) END::DOUBLE AS dur
FROM k LEFT JOIN jour USING (journey_id) LEFT JOIN last USING (journey_id)
ORDER BY k.journey_id
"""


def recount(con: Any, scope: str, params: list[Any], payload: Any) -> dict[str, Any]:
    """`path_estimates` and `duration_estimates` of one scope from the journey tables (engine.resolved); `scope`:
    its `sc` CTE, `params` that CTE's parameters. As many top entries as the stored block shows (the snapshot's
    top_paths, or every entry of a scope with fewer)."""
    from engine.snapshot_estimates import NOT_YET

    dropoff, journey = payload["dropoff_outcome"], payload["journey"]
    top_n = len((payload.get("path_estimates") or {}).get("top") or [])
    rows = con.execute(_ROWS_SQL.format(scope=scope), [
        *params, journey, SEP, bool(payload.get("collapse_self_loops")), journey, float(payload["journey_window_s"]),
        dropoff, dropoff]).fetchall()
    censored = np.array([r[0] for r in rows], dtype=bool)
    if not len(rows) or censored.all():
        return {"path_estimates": {"top": [], "resolved": 0, "journeys": len(rows), "note": NOT_YET},
                "duration_estimates": {"note": NOT_YET}}
    outcome = [r[3] for r in rows]
    path = [r[4] for r in rows]
    ok = np.array([o is not None and p is not None for o, p in zip(outcome, path)], dtype=bool)
    names = sorted({f"{p or ''}{SEP}{SEP}{o or ''}" for p, o in zip(path, outcome)})
    code = {name: i for i, name in enumerate(names)}
    seqs = {p: i for i, p in enumerate(sorted({p or "" for p in path}))}
    return scope_block(ScopeRows(
        known_t=np.array([r[1] for r in rows], dtype=float), ok=ok, follow=np.array([r[2] for r in rows], dtype=float),
        key=np.array([code[f"{p or ''}{SEP}{SEP}{o or ''}"] for p, o in zip(path, outcome)], dtype=np.int64),
        seq=np.array([seqs[p or ""] for p in path], dtype=np.int64),
        converted=np.array([o == payload["conversion_outcome"] for o in outcome], dtype=bool), censored=censored,
        dur=np.array([np.nan if r[6] is None else r[6] for r in rows], dtype=float),
        length=np.array([r[5] for r in rows], dtype=float), names=names), top_n)
