"""Snapshot payloads holding a known chain's *expected* counts, for tests and benchmarks.

Given transition probabilities and a number of journeys, every count in the
payload is the chain's closed-form expectation (rounded): transitions from
expected visits N[start, s]·P(s → t), reach from P(reach s) = N[start,s]/N[s,s],
conversion among visitors from B[s, conversion] (strong Markov property),
repeats from the return probability 1 − 1/N[s,s]. So detectors can be tested
on exact numbers with no simulation noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ontology.model import content_id


def chain_payload(probs: Mapping[str, Mapping[str, float]], *, journeys: int, start: str,
                  conversion: str = "converted", dropoff: str = "dropped", journey: str = "activation",
                  scope: str = "all", window: tuple[str, str] = ("2026-01-05T00:00:00Z", "2026-03-02T00:00:00Z"),
                  segment: tuple[str, str] | None = None, release: str | None = None, tenant_id: str = "",
                  paths: Sequence[Mapping[str, Any]] = (), durations: Mapping[str, float] | None = None,
                  tag: str = "") -> dict[str, Any]:
    states = sorted(probs)
    outcomes = sorted({t for row in probs.values() for t in row if t not in probs} | {conversion, dropoff})
    si = {s: i for i, s in enumerate(states)}
    oi = {o: i for i, o in enumerate(outcomes)}
    Q = np.zeros((len(states), len(states)))
    R = np.zeros((len(states), len(outcomes)))
    for s, row in probs.items():
        for t, p in row.items():
            if t in si:
                Q[si[s], si[t]] = p
            else:
                R[si[s], oi[t]] = p
    N = np.linalg.solve(np.eye(len(states)) - Q, np.eye(len(states)))
    B = N @ R
    st = si[start]
    visits = journeys * N[st]
    reach_p = N[st] / np.diag(N)
    ret = 1.0 - 1.0 / np.diag(N)
    transitions = [{"from": s, "to": t, "count": int(round(visits[si[s]] * p))}
                   for s, row in sorted(probs.items()) for t, p in sorted(row.items()) if round(visits[si[s]] * p) > 0]
    outcome_counts = {o: int(round(journeys * B[st, oi[o]])) for o in outcomes}
    reach_counts = {s: int(round(journeys * reach_p[si[s]])) for s in states}
    payload = {
        "snapshot_id": "", "tenant_id": tenant_id, "journey": journey, "level": "semantic", "scope": scope,
        "segment": {"key": segment[0], "value": segment[1]} if segment else None, "release": release,
        "window": {"start": window[0], "end": window[1]}, "mature": True, "start_state": start,
        "conversion_outcome": conversion, "dropoff_outcome": dropoff, "states": states, "outcomes": outcomes,
        "journeys": journeys, "completed": journeys, "censored": 0, "actors": journeys,
        "outcome_counts": outcome_counts, "transitions": transitions, "reach_counts": reach_counts,
        "reach_outcome_counts": {s: {o: int(round(journeys * reach_p[si[s]] * B[si[s], oi[o]])) for o in outcomes}
                                 for s in states},
        "visit_counts": {s: int(round(visits[si[s]])) for s in states},
        "repeat_counts": {s: int(round(journeys * reach_p[si[s]] * ret[si[s]])) for s in states},
        "repeat_outcome_counts": {s: {o: int(round(journeys * reach_p[si[s]] * ret[si[s]] * B[si[s], oi[o]]))
                                      for o in outcomes} for s in states},
        "durations": dict(durations or {"median_s": 3600.0, "median_length": 4}),
        "paths": {"top": [dict(p) for p in paths], "coverage": 0.0, "other_count": 0, "other_share": 0.0},
        "collapse_self_loops": False, "input_hash": "synthetic", "config_hash": "synthetic", "engine_version": "0.1.0",
    }
    payload["snapshot_id"] = content_id("snapshot", {**payload, "tag": tag}, length=16)
    return payload


def simulated_payload(probs: Mapping[str, Mapping[str, float]], *, journeys: int, seed: int, start: str,
                      conversion: str = "converted", dropoff: str = "dropped", max_steps: int = 200,
                      **meta: Any) -> dict[str, Any]:
    """Like `chain_payload`, but counts from `journeys` seeded random walks (sampling noise included).

    Vectorised over journeys: one numpy step moves every live journey. Journeys
    still walking after max_steps are sent to the drop-off outcome.
    """
    states = sorted(probs)
    targets = states + sorted({t for row in probs.values() for t in row if t not in probs} | {conversion, dropoff})
    ti = {t: i for i, t in enumerate(targets)}
    P = np.zeros((len(states), len(targets)))
    for s, row in probs.items():
        for t, p in row.items():
            P[ti[s], ti[t]] = p
    cum = np.cumsum(P / P.sum(axis=1, keepdims=True), axis=1)
    rng = np.random.default_rng(seed)
    ns = len(states)
    visits = np.zeros((journeys, ns), dtype=np.int64)
    trans = np.zeros((ns, len(targets)), dtype=np.int64)
    cur = np.full(journeys, ti[start])
    outcome = np.full(journeys, ti[dropoff])
    live = np.arange(journeys)
    for _ in range(max_steps):
        if live.size == 0:
            break
        np.add.at(visits, (live, cur[live]), 1)
        nxt = (rng.random(live.size)[:, None] > cum[cur[live]]).sum(axis=1)
        nxt = np.minimum(nxt, len(targets) - 1)
        np.add.at(trans, (cur[live], nxt), 1)
        done = nxt >= ns
        outcome[live[done]] = nxt[done]
        cur[live[~done]] = nxt[~done]
        live = live[~done]
    return _payload_from_walks(states, targets, visits, trans, outcome, journeys, start, conversion, dropoff, seed, meta)


def _payload_from_walks(states: list[str], targets: list[str], visits: np.ndarray, trans: np.ndarray,
                        outcome: np.ndarray, journeys: int, start: str, conversion: str, dropoff: str, seed: int,
                        meta: Mapping[str, Any]) -> dict[str, Any]:
    base = chain_payload({s: {dropoff: 1.0} for s in states}, journeys=journeys, start=start,
                         conversion=conversion, dropoff=dropoff, **meta)
    outcomes = sorted(targets[len(states):])
    base["outcomes"] = outcomes
    ti = {t: i for i, t in enumerate(targets)}
    reached = visits > 0
    repeat = visits > 1
    by_out = {o: outcome == ti[o] for o in outcomes}
    base.update({
        "transitions": [{"from": s, "to": t, "count": int(trans[ti[s], ti[t]])}
                        for s in states for t in sorted(targets) if trans[ti[s], ti[t]] > 0],
        "outcome_counts": {o: int(by_out[o].sum()) for o in outcomes},
        "reach_counts": {s: int(reached[:, ti[s]].sum()) for s in states},
        "reach_outcome_counts": {s: {o: int((reached[:, ti[s]] & by_out[o]).sum()) for o in outcomes} for s in states},
        "visit_counts": {s: int(visits[:, ti[s]].sum()) for s in states},
        "repeat_counts": {s: int(repeat[:, ti[s]].sum()) for s in states},
        "repeat_outcome_counts": {s: {o: int((repeat[:, ti[s]] & by_out[o]).sum()) for o in outcomes} for s in states},
    })
    base["transitions"].sort(key=lambda t: (t["from"], t["to"]))
    base["snapshot_id"] = content_id("snapshot", {**base, "snapshot_id": "", "seed": seed}, length=16)
    return base


COUNT_MAPS = ("outcome_counts", "reach_counts", "visit_counts", "repeat_counts")
NESTED_MAPS = ("reach_outcome_counts", "repeat_outcome_counts")


def merge_payloads(parts: Sequence[Mapping[str, Any]], **meta: Any) -> dict[str, Any]:
    """Counts of disjoint groups of journeys added up (e.g. segments → all data), with new metadata.

    `meta` may set scope, window (a (start, end) pair), segment ((key, value)), release, tag.
    """
    out = {k: v for k, v in parts[0].items()}
    out["states"] = sorted(set().union(*(p["states"] for p in parts)))
    out["outcomes"] = sorted(set().union(*(p["outcomes"] for p in parts)))
    for key in ("journeys", "completed", "censored", "actors"):
        out[key] = sum(int(p.get(key, 0)) for p in parts)
    for key in COUNT_MAPS:
        out[key] = _sum_maps([p[key] for p in parts])
    for key in NESTED_MAPS:
        out[key] = {s: _sum_maps([p[key].get(s, {}) for p in parts]) for s in out["states"]}
    edges = _sum_maps([{f"{t['from']}\x00{t['to']}": t["count"] for t in p["transitions"]} for p in parts])
    out["transitions"] = [{"from": k.split("\x00")[0], "to": k.split("\x00")[1], "count": v} for k, v in sorted(edges.items())]
    out["scope"] = meta.get("scope", "all")
    window = meta.get("window", (min(p["window"]["start"] for p in parts), max(p["window"]["end"] for p in parts)))
    out["window"] = {"start": window[0], "end": window[1]}
    seg = meta.get("segment")
    out["segment"] = {"key": seg[0], "value": seg[1]} if seg else None
    out["release"] = meta.get("release")
    out["snapshot_id"] = content_id("snapshot", {**out, "snapshot_id": "", "tag": meta.get("tag", "")}, length=16)
    return out


def _sum_maps(maps: Sequence[Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for m in maps:
        for k, v in m.items():
            total[k] = total.get(k, 0) + int(v)
    return dict(sorted(total.items()))
