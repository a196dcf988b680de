"""Conversion by reached state and by repeat visits, from every journey whose end is known (`state_estimates`).

detectors.activation_driver and detectors.repeated_visit read completed-only
counts (reach_counts, reach_outcome_counts, visit_counts, repeat_counts): a
journey counts once start + window <= data end, so the latest periods wait a
whole window. The quantities here are the same whole-journey ones, per state s:

* reach P(R), R = the journey visits s;
* P(converted | R), P(converted | not R);
* among visitors: mean visits, share visiting twice or more, P(converted | repeat), P(converted | one visit).

Each is a ratio of means of a function of the *whole* journey, so the estimator
is the one engine.ipcw explains (the same as `path_estimates`): the journeys whose
end is known by the data end (complete ones, and open ones whose outcome is
decided), each weighted by 1 / Ĝ(T_i), T_i the time its end became known, Ĝ the
scope's follow-up distribution; ratios in Hájek form Σ w·y·g / Σ w·g over a group
g, so with nothing censored every weight is 1 and each number is the
completed-only count ratio, bit for bit. Variance: the sandwich
Σ w² g (y − p̂)² / (Σ w g)² (one row per journey: each journey is its own cluster);
effective n: Kish's (Σ w g)² / Σ w² g, the count when the weights are all 1.

Visits follow the completed-only rule (engine.step_counts): with
`collapse_self_loops` a step equal to the one before it is not a new visit; when
the log carries XES lifecycle transitions the lifecycle-merged visits of
engine.lifecycle_visits (same rule, its SQL per journey) are given too, under
`lifecycle`. Positivity (engine.snapshot_estimates.NOT_YET): a journey lasting the
whole window resolves only once some journey of the scope was followed that long,
so a scope without a complete journey gets a note and no numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engine import arrow_scan, int_width, ipcw, lifecycle_visits

ESTIMATOR = "ipcw_hajek"
DESCRIPTION = ("ipcw_hajek: per state, P(converted | reached / not reached), reach, mean visits, repeat share and "
               "P(converted | repeat / one visit) over journeys whose end is known by the data end, each weighted "
               "by 1 / P(follow-up >= time the end became known); Hajek ratios, sandwich se (a journey is a "
               "cluster), Kish effective n")

# Lifecycle-merged visits per (journey, state) of the journeys `{journeys}` lists (journey_id, jrow): the rule
# of engine.lifecycle_visits.COUNTS_SQL, every journey of the definition, open ones included.
LIFECYCLE_SQL = f"""
WITH sc AS ({{journeys}}),
st AS (SELECT sc.jrow, s.step, s.state, lower(json_extract_string(e.properties, '{lifecycle_visits.KEY}')) AS lc
       FROM journey_steps s JOIN sc USING (journey_id)
       JOIN journeys j ON j.journey = s.journey AND j.journey_id = s.journey_id
       JOIN events e ON e.tenant_id = coalesce(j.tenant_id, '') AND e.event_id = s.event_id
       WHERE s.journey = $journey AND s.state IS NOT NULL),
m AS (SELECT *, lag(lc) OVER (PARTITION BY jrow, state ORDER BY step) AS prev FROM st)
SELECT jrow, state, count(*) FILTER ({lifecycle_visits.NEW_VISIT})::BIGINT AS visits FROM m GROUP BY ALL
"""


@dataclass(frozen=True)
class Visits:
    """Visited (journey row, state) pairs ordered by (row, state): plain visits, lifecycle-merged ones (or None)."""

    row: np.ndarray
    state: np.ndarray
    visits: np.ndarray
    lifecycle: np.ndarray | None
    names: list[str]

    @classmethod
    def of(cls, con: Any, steps: Any, journeys_sql: str, journey: str) -> Visits:
        """From engine.step_shares.StepRows (the collapse rule as engine.step_counts applies it) and, when the
        log has lifecycle transitions, LIFECYCLE_SQL over `journeys_sql` (journey_id, jrow)."""
        row, state, _, visits = steps.visits()
        return cls(row, state, visits, lifecycle_of(con, journeys_sql, journey, row, state, steps.state_names),
                   steps.state_names)


def lifecycle_of(con: Any, journeys_sql: str, journey: str, row: np.ndarray, state: np.ndarray,
                 names: list[str]) -> np.ndarray | None:
    """Lifecycle-merged visits of each (row, state) pair, None when the log has no lifecycle transitions."""
    if not lifecycle_visits.present(con):
        return None
    t = arrow_scan.fetch(con, LIFECYCLE_SQL.format(journeys=journeys_sql), {"journey": journey})
    code = pc.index_in(t.column("state").combine_chunks().cast(pa.string()), value_set=pa.array(names, pa.string()))
    k = max(len(names), 1)
    key = t.column("jrow").to_numpy().astype(np.int64) * k + pc.fill_null(code, 0).to_numpy(zero_copy_only=False)
    order = np.argsort(key, kind="stable")
    key, merged = key[order], t.column("visits").to_numpy().astype(np.int64)[order]
    want = row * k + state
    at = np.minimum(np.searchsorted(key, want), max(len(key) - 1, 0))
    found = (key[at] == want) if len(key) else np.zeros(len(want), bool)
    return np.where(found, merged[at] if len(key) else 0, 1)  # a pair the SQL lacks: one visit


@dataclass(frozen=True)
class Journeys:
    """One scope's journeys: when the end became known (since the start), whether by the data end, the follow-up,
    whether censored (start + window > data end) and whether converted."""

    known_t: np.ndarray
    ended: np.ndarray
    follow: np.ndarray
    censored: np.ndarray
    converted: np.ndarray


def _r6(x: float | None) -> float | None:
    from engine.snapshot import r6

    return r6(x)


def _hajek(s_w: np.ndarray, s_wy: np.ndarray, s_w2: np.ndarray, s_w2y: np.ndarray,
           s_w2y2: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimate, se, Kish n_eff) of Σ w y / Σ w per group from its sums of w, w·y, w², w²·y, w²·y² (that one
    is w²·y for a binary y, the default)."""
    s_w2y2 = s_w2y if s_w2y2 is None else s_w2y2
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(s_w > 0, s_wy / s_w, 0.0)
        var = np.where(s_w > 0, (s_w2y2 - 2 * p * s_w2y + p * p * s_w2) / (s_w * s_w), 0.0)
        n_eff = np.where(s_w2 > 0, s_w * s_w / s_w2, 0.0)
    return p, np.sqrt(np.maximum(var, 0.0)), n_eff


def _complement(tot: tuple[Any, ...], part: tuple[np.ndarray, ...], n: np.ndarray,
                n_y: np.ndarray) -> tuple[np.ndarray, ...]:
    """Hájek share over the journeys outside each group: the scope's sums minus the group's. `n`, `n_y`: the
    journeys (with y) outside it, counted; where none, the sums are exactly 0, not a rounding residue (a state
    no converter skips must read P = 0)."""
    s = [np.where(c > 0, np.maximum(t - p, 0.0), 0.0) for t, p, c in zip(tot, part, (n, n_y, n, n_y))]
    return _hajek(s[0], s[1], s[2], s[3])


def block(j: Journeys, pos: np.ndarray, state: np.ndarray, visits: np.ndarray, lifecycle: np.ndarray | None,
          names: list[str], w: np.ndarray | None = None) -> dict[str, Any]:
    """One scope's `state_estimates`. `pos`, `state`, `visits` (`lifecycle`): the scope's visited (journey, state)
    pairs, `pos` the journey's place in `j`'s arrays (engine.resolved recounts a scope with this too). `w`: the
    journeys' ipcw.weights(known_t, ended, follow), when the caller has them."""
    from engine.snapshot_estimates import NOT_YET

    counts = {"complete": int((~j.censored).sum()), "resolved_in_progress": int((j.censored & j.ended).sum()),
              "unresolved": int((j.censored & ~j.ended).sum())}
    if not len(j.censored) or j.censored.all():
        return {"estimator": ESTIMATOR, "journeys": counts, "note": NOT_YET}
    w = ipcw.weights(j.known_t, j.ended, j.follow) if w is None else w
    y = j.converted.astype(float)
    k = max(len(names), 1)
    wv, yes = w[pos], np.asarray(j.converted, dtype=bool)[pos]  # per visitor: its weight, whether it converted
    tot = (float(w.sum()), float((w * y).sum()), float((w * w).sum()), float((w * w * y).sum()))
    w2 = wv ** 2  # once for the visitors' sums and both repeat blocks
    part, raw, raw_y = _visitor_sums(state, wv, yes, k, w2)
    ended, ended_y = int(j.ended.sum()), int((j.ended & j.converted).sum())
    groups = {"reached": _hajek(*part), "not_reached": _complement(tot, part, ended - raw, ended_y - raw_y),
              # reach: y = R over every journey, so the group sums are the scope's and y's are the visitors'
              "reach": _hajek(np.full(k, tot[0]), part[0], np.full(k, tot[2]), part[2])}
    conv, conv_se, n_eff = (float(x[0]) for x in _hajek(*(np.array([t]) for t in tot)))
    plain = _repeats(part, (raw, raw_y), wv, w2, yes, visits, state, k)
    lc = _repeats(part, (raw, raw_y), wv, w2, yes, lifecycle, state, k) if lifecycle is not None else None
    seen = sorted((int(s) for s in np.flatnonzero(part[0] > 0)), key=lambda s: names[s])
    result = {"estimator": ESTIMATOR, "journeys": counts, "n_eff": _r6(n_eff), "p_convert": _r6(conv),
              "p_convert_se": _r6(conv_se),
              "states": {names[s]: {**_reach_entry(groups, s, int(raw[s]), ended),
                                    "converted_reached": int(raw_y[s]), "converted_not_reached": ended_y - int(raw_y[s]),
                                    **_repeat_entry(plain, s)} for s in seen}}
    if lc is not None:
        result["lifecycle"] = {names[s]: _repeat_entry(lc, s) for s in seen}
    return result


def _visitor_sums(state: np.ndarray, wv: np.ndarray, conv: np.ndarray, k: int,
                  w2: np.ndarray | None = None) -> tuple[tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """Per state the visitors' Σw, Σw·y, Σw², Σw²·y and their counts (w > 0; and converted), y = converted.

    The y-weighted sums run over the converters alone: a non-converter's term w·0 is +0.0, which changes no
    partial sum (all are ≥ +0), and a converter's w·1 is w, so each bin adds the same numbers in the same
    order as over every visitor; the counts are whole numbers either way. `w2`: wv ** 2, when the caller has it."""
    w2 = wv ** 2 if w2 is None else w2
    s_c, w_c = state[conv], wv[conv]

    def of_converters(x: np.ndarray) -> np.ndarray:  # float zeros for no converter, as the sum over all gave
        return np.bincount(s_c, weights=x, minlength=k) if len(s_c) or not len(state) else np.zeros(k)

    part = (np.bincount(state, weights=wv, minlength=k), of_converters(w_c),
            np.bincount(state, weights=w2, minlength=k), of_converters(w2[conv]))
    return part, np.bincount(state[wv > 0], minlength=k), np.bincount(s_c[w_c > 0], minlength=k)


def _reach_entry(g: dict[str, tuple[np.ndarray, ...]], s: int, raw: int, ended: int) -> dict[str, Any]:
    r, nr, reach = g["reached"], g["not_reached"], g["reach"]
    return {"reach": _r6(reach[0][s]), "reach_se": _r6(reach[1][s]), "reached": raw, "not_reached": ended - raw,
            "p_reached": _r6(r[0][s]), "se_reached": _r6(r[1][s]), "n_eff_reached": _r6(r[2][s]),
            "p_not_reached": _r6(nr[0][s]), "se_not_reached": _r6(nr[1][s]), "n_eff_not_reached": _r6(nr[2][s])}


def _repeats(part: tuple[np.ndarray, ...], raw: tuple[np.ndarray, np.ndarray], wv: np.ndarray, w2: np.ndarray,
             conv: np.ndarray, visits: np.ndarray, state: np.ndarray, k: int) -> dict[str, Any]:
    """Per state among visitors: mean visits, repeat share, conversion of repeaters and of single visitors.
    `part`/`raw`: the visitors' weighted sums (w, w·y, w², w²·y) and raw counts (all, converted); single
    visitors are the visitors minus the repeaters, so only the repeaters and the visit counts are summed.
    `w2`: wv ** 2 (one rounding per element: the same floats as squaring here again)."""
    v = visits.astype(float)
    r = visits >= 2
    w_r, y_r, s_r, w2_r = wv[r], conv[r].astype(float), state[r], w2[r]
    rep = tuple(np.bincount(s_r, weights=x, minlength=k) for x in (w_r, w_r * y_r, w2_r, w2_r * y_r))
    raw_r = (np.bincount(s_r, weights=w_r > 0, minlength=k).astype(np.int64),
             np.bincount(s_r, weights=(w_r > 0) & (y_r > 0), minlength=k).astype(np.int64))
    term = np.multiply(wv, v, out=v)  # the visit counts' buffer: w·v, then w²·v and w²·v·v (left to right)
    s_wv = np.bincount(state, weights=term, minlength=k)
    s_w2v = np.bincount(state, weights=np.multiply(w2, visits, out=term), minlength=k)
    s_w2v2 = np.bincount(state, weights=np.multiply(term, visits, out=term), minlength=k)
    mean = _hajek(part[0], s_wv, part[2], s_w2v, s_w2v2)
    return {"mean": mean, "share": _hajek(part[0], rep[0], part[2], rep[2]), "repeat": _hajek(*rep),
            "single": _complement(part, rep, raw[0] - raw_r[0], raw[1] - raw_r[1]), "raw": raw_r[0]}


def _repeat_entry(r: dict[str, Any], s: int) -> dict[str, Any]:
    return {"visits_mean": _r6(r["mean"][0][s]), "visits_se": _r6(r["mean"][1][s]),
            "repeat_share": _r6(r["share"][0][s]), "repeat_se": _r6(r["share"][1][s]), "repeats": int(r["raw"][s]),
            "p_repeat": _r6(r["repeat"][0][s]), "se_repeat": _r6(r["repeat"][1][s]),
            "n_eff_repeat": _r6(r["repeat"][2][s]), "p_single": _r6(r["single"][0][s]),
            "se_single": _r6(r["single"][1][s]), "n_eff_single": _r6(r["single"][2][s])}


def of_scope(rows: Any, take: np.ndarray, visits: Visits, lo: np.ndarray, hi: np.ndarray,
             w: np.ndarray | None = None) -> dict[str, Any]:
    """engine.snapshot_estimates.by_scope's block for one scope (`take`: its journey rows, class ranges [lo, hi);
    `w`: as `block`'s)."""
    rows_at: slice | np.ndarray
    if len(lo) and bool((hi[:-1] == lo[1:]).all()):  # one run of rows: its visits are one run too, read in place
        at = [slice(*(int(x) for x in int_width.searchsorted(visits.row, [lo[0], hi[-1]], side="left")))]
        rows_at = slice(int(lo[0]), int(hi[-1]))
    else:  # a run of visits per class range: its slices put together (no index array, no gather)
        a, b = int_width.searchsorted(visits.row, lo, side="left"), int_width.searchsorted(visits.row, hi, side="left")
        at, rows_at = [slice(int(x), int(y)) for x, y in zip(a, b)], take
    offsets = np.cumsum(hi - lo) - (hi - lo)  # where each class's rows start inside the scope
    # each visit's journey's place in the scope, run by run (engine.snapshot_estimates._members' numbers)
    pos = _joined([visits.row[r] - int(s - o) for r, s, o in zip(at, lo, offsets)])  # int: keeps the rows' type
    j = Journeys(known_t=rows.aj_t[rows_at], ended=rows.ended[rows_at], follow=rows.follow[rows_at],
                 censored=rows.censored[rows_at], converted=rows.converted[rows_at])
    return block(j, pos, _joined([visits.state[r] for r in at]), _joined([visits.visits[r] for r in at]),
                 None if visits.lifecycle is None else _joined([visits.lifecycle[r] for r in at]), visits.names, w)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The runs one after the other; a single run as it is (a view where it is one)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.int64)


# engine.resolved's recount of one scope: visits per (journey, state) straight from journey_steps, the
# completed-only rule (engine.step_counts: with collapse, a step equal to the one before is no new visit).
_RECOUNT_VISITS_SQL = """
WITH r AS (SELECT journey_id, jrow FROM {journeys}),
raw AS (SELECT r.jrow, s.state, lag(s.state) OVER (PARTITION BY s.journey_id ORDER BY s.step) AS prev
        FROM journey_steps s JOIN r USING (journey_id) WHERE s.journey = $journey AND s.state IS NOT NULL)
SELECT jrow, state, count(*)::BIGINT AS visits FROM raw WHERE NOT $collapse OR prev IS NULL OR prev <> state
GROUP BY ALL ORDER BY jrow, state
"""


def recount(con: Any, journeys: str, payload: Any) -> dict[str, Any]:
    """One scope's block from a table like engine.resolved's `_jg_rc` (jrow, journey_id, censored, follow,
    known_t, dest_o), with visits recounted by SQL: what narrator.recompute checks the stored block against."""
    per = arrow_scan.fetch(con, f"SELECT censored, follow, known_t, dest_o FROM {journeys} ORDER BY jrow")
    known = pc.fill_null(per.column("known_t"), np.nan).to_numpy(zero_copy_only=False).astype(float)
    conv = pc.fill_null(pc.equal(per.column("dest_o"), str(payload["conversion_outcome"])), False)
    j = Journeys(known_t=np.nan_to_num(known, nan=0.0), ended=~np.isnan(known),
                 follow=per.column("follow").to_numpy().astype(float),
                 censored=per.column("censored").to_numpy(zero_copy_only=False).astype(bool),
                 converted=conv.to_numpy(zero_copy_only=False).astype(bool))
    v = arrow_scan.fetch(con, _RECOUNT_VISITS_SQL.format(journeys=journeys),
                         {"journey": payload["journey"], "collapse": bool(payload.get("collapse_self_loops"))})
    encoded = pc.dictionary_encode(v.column("state").combine_chunks().cast(pa.string()))
    names = [str(x) for x in encoded.dictionary.to_pylist()]
    row = v.column("jrow").to_numpy().astype(np.int64)
    state = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    lifecycle = lifecycle_of(con, f"SELECT journey_id, jrow FROM {journeys}", payload["journey"], row, state, names)
    return block(j, row, state, v.column("visits").to_numpy().astype(np.int64), lifecycle, names)
