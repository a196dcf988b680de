"""Top-N paths of every snapshot scope, with the numbers that make them reconcile with totals.

A path is a completed journey's full state sequence plus its outcome. For each
scope the N most frequent (sequence, outcome) pairs are shown with their count,
share of completed journeys, distinct actors, the conversion rate of the state
sequence (across all outcomes it ended in) with the sequence's own totals
(`sequence_count` journeys, `sequence_conversions` of them converted, counted
over every outcome, shown or not), and median duration and length.
`coverage` is the share of completed journeys the shown paths hold and
`other_count` / `other_share` the rest, so shown + other = completed always.
Ties in count are broken by the sequence, then the outcome (deterministic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SEP = chr(31)  # the unit separator joins a path's states (engine.snapshot builds the key)
_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd multiplier of the sequence hash (arithmetic mod 2**64)

# Exact counts rank every (sequence, outcome); the costly aggregates (distinct actors, medians) run only on
# the top N of each scope (measured on 1 M events: 1.2 -> 0.6 CPU-s, same rows). Counting goes through the
# scope-set classes (engine.snapshot): one row per journey is grouped per class, then spread over the
# class's scopes, instead of joining every journey's path string to each of its ~6 scopes (0.56 -> 0.3 CPU-s).
# Sequences are grouped by their integer id (`path_ids`); only the candidates for the top N (count at
# least the scope's N-th largest) fetch their string (one row per id), which breaks ties in count.
_TOP_SQL = """
WITH jc AS (SELECT path_id, outcome, actor_id, duration_s, length, cls FROM {jour}),
pc AS (SELECT cls, path_id, outcome, count(*) AS cnt FROM jc GROUP BY ALL),
po AS (SELECT cs.sid, pc.path_id, pc.outcome, sum(pc.cnt)::BIGINT AS cnt FROM pc JOIN {class_sids} cs USING (cls) GROUP BY ALL),
done AS (SELECT sid, sum(cnt)::BIGINT AS completed FROM po GROUP BY sid),
floor AS (SELECT sid, list_min(max(cnt, greatest($top, 1))) AS least FROM po GROUP BY sid),  -- the N-th largest count per scope
cand AS (SELECT po.* FROM po JOIN floor USING (sid) WHERE po.cnt >= floor.least),
names AS (SELECT path_id, path FROM {path_names} SEMI JOIN cand USING (path_id)),
ranked AS (SELECT cand.*, names.path, row_number() OVER (PARTITION BY sid ORDER BY cnt DESC, names.path, outcome) AS rn
           FROM cand JOIN names USING (path_id) QUALIFY rn <= $top),
seq AS (SELECT po.sid, po.path_id, sum(po.cnt) AS n_seq, coalesce(sum(po.cnt) FILTER (po.outcome = $conversion), 0) AS n_conv
        FROM po SEMI JOIN ranked USING (sid, path_id) GROUP BY ALL),
shown AS (SELECT * FROM jc SEMI JOIN (SELECT DISTINCT path_id, outcome FROM ranked) r USING (path_id, outcome)),
detail AS (SELECT cs.sid, s.path_id, s.outcome, count(DISTINCT s.actor_id) AS actors, median(s.duration_s) AS med_s,
                  median(s.length) AS med_len
           FROM shown s JOIN {class_sids} cs USING (cls) SEMI JOIN ranked USING (sid, path_id, outcome) GROUP BY ALL)
SELECT r.sid, done.completed, r.path, r.outcome, r.cnt, d.actors, seq.n_seq, seq.n_conv, d.med_s, d.med_len
FROM ranked r JOIN done USING (sid) JOIN seq USING (sid, path_id) JOIN detail d USING (sid, path_id, outcome) ORDER BY r.sid, r.rn
"""


def journey_paths(state: np.ndarray, starts: np.ndarray, names: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Each journey's path (its states in step order joined by SEP) and a path id, equal exactly when the
    paths are; `state` holds the journeys' state codes one after another, journey i from `starts[i]`."""
    distinct, ids = path_ids(state, starts, names)
    return distinct.take(pa.array(ids)), ids


def path_ids(state: np.ndarray, starts: np.ndarray, names: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """The distinct paths, and each journey's path id: its path's place among them (journey_paths' ids).

    Only the distinct paths are joined into strings: journeys are grouped by a hash of their code
    sequence and length, each checked code by code against its group's first journey (a collision,
    never seen, falls back to grouping the strings themselves). A journey's own string is never made:
    the snapshot's per-journey table holds the id, the few shown paths are looked up by it."""
    lengths = np.diff(np.append(starts, len(state))).astype(np.int64)
    if not len(starts):
        return pa.array([], pa.large_string()), np.zeros(0, np.int64)
    pos = _ranges(lengths)
    powers = np.cumprod(np.full(int(lengths.max()) + 1, _BASE, dtype=np.uint64))
    h = np.add.reduceat((state.astype(np.uint64) + np.uint64(1)) * powers[pos + 1], starts) + lengths.astype(np.uint64)
    order = np.argsort(h)
    sorted_h = h[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = sorted_h[1:] != sorted_h[:-1]
    ids = np.empty(len(order), dtype=np.int64)
    ids[order] = np.cumsum(new) - 1
    first = order[new]  # one journey per id
    rep = first[ids]
    if not (np.array_equal(lengths, lengths[rep]) and np.array_equal(state, state[np.repeat(starts[rep], lengths) + pos])):
        encoded = pc.dictionary_encode(_join(state, starts, lengths, names))
        return encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(starts[first], lengths[first]) + _ranges(lengths[first])
    return _join(state[rows], np.cumsum(lengths[first]) - lengths[first], lengths[first], names), ids


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 for each length n, one after another."""
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def _join(state: np.ndarray, starts: np.ndarray, lengths: np.ndarray, names: pa.Array) -> pa.Array:
    offsets = np.append(starts, starts[-1] + lengths[-1] if len(starts) else 0).astype(np.int64)  # large: no 2 GB limit
    values = names.cast(pa.large_string()).take(pa.array(state))
    return pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), values), pa.scalar(SEP, type=pa.large_string()))


def _r6(value: float | None) -> float | None:
    return None if value is None else (round(float(value), 6) or 0.0)


def empty_paths(completed: int = 0) -> dict[str, Any]:
    """The paths block of a scope with no completed journey."""
    return {"top": [], "coverage": 0.0, "other_count": completed, "other_share": 1.0 if completed else 0.0}


def top_paths(con: Any, jour: str, path_names: str, class_sids: str, top_n: int,
              conversion: str) -> dict[int, dict[str, Any]]:
    """Paths block per scope id.

    `jour` holds completed journeys' path ids (path_id) and their class (cls), `path_names` each path id's path
    (path_id, path: one row per id), `class_sids` maps cls -> sid.
    """
    sql = _TOP_SQL.format(jour=jour, path_names=path_names, class_sids=class_sids)
    rows = con.execute(sql, {"conversion": conversion, "top": int(top_n)}).fetchall()
    out: dict[int, dict[str, Any]] = {}
    for sid, completed, path, outcome, cnt, actors, n_seq, n_conv, med_s, med_len in rows:
        block = out.setdefault(sid, {"top": [], "completed": completed})
        block["top"].append({
            "path": path.split(SEP), "outcome": outcome, "count": cnt, "share": _r6(cnt / completed),
            "actors": actors, "conversion_rate": _r6(n_conv / n_seq),
            "sequence_count": int(n_seq), "sequence_conversions": int(n_conv),
            "median_duration_s": _r6(med_s), "median_length": _r6(med_len),
        })
    for block in out.values():
        completed = block.pop("completed")
        shown = sum(p["count"] for p in block["top"])
        block["coverage"] = _r6(shown / completed)
        block["other_count"] = completed - shown
        block["other_share"] = _r6((completed - shown) / completed)
    return out
