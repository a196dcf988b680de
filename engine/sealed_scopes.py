"""Sealed scopes: a period or release scope whose journeys are all over is computed once and reused after.

A period or release scope is *sealed* once its window end + the journey window ≤ its tenant's data end:
every journey of it started before the window end, so its window is over and none is censored. Its
snapshot is then a function of its journeys alone (their rows and steps), the config and the engine
version, never of the data end or of other scopes. Its payload carries `sealed_key`, a content hash
over exactly those; a later run that finds a stored snapshot with the same key takes that payload,
stamps it with this run's input hash and snapshot id (a snapshot is never rewritten: the new id is a new
row, and the stored one stays as it was), and leaves the scope out of every count (engine.snapshot drops
it from `_jg_csid`). A sealed scope whose journeys changed in any way (a late event, a merge of actors,
new rules) gets another key and is computed again, so reuse can never serve stale numbers; with
JOURNEYGRAPH_FULL_RECOMPUTE=1 nothing is reused and the payloads are the same bytes (tests/e2e/test_incremental.py).

The key: per journey, DuckDB's hash of its `journeys` row (id, actor, start, end, outcome, censoring,
step count, segments) and a digest of its steps in order (state name and time, engine.step_arrays);
per scope, the count and the wrapping sum of those, with the scope's descriptors, the config hash, the
engine version and whether lifecycle merging applies (engine.lifecycle_visits).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from engine.incremental import FULL_ENV
from engine.step_arrays import StepArrays
from ontology.model import content_id

SEALED_SCOPES = ("period", "release_before", "release_after")

_CANDIDATES_SQL = """
SELECT s.sid, any_value(s.tenant_id), any_value(s.scope), any_value(s.release), any_value(s.w_start),
       any_value(s.w_end)
FROM _jg_cscopes s JOIN _jg_ends e USING (tenant_id)
WHERE s.scope IN ('period', 'release_before', 'release_after') AND s.w_end + to_seconds($window) <= e.data_end
GROUP BY s.sid ORDER BY s.sid
"""

_MEMBERS_SQL = """SELECT DISTINCT c.jix FROM _jg_jclass c JOIN _jg_csid cs USING (cls)
                  WHERE list_contains($sids, cs.sid) ORDER BY c.jix"""
_DIGESTS_SQL = """
WITH per AS (
  SELECT c.cls, count(*) AS n,
         sum(xor(hash(j.journey_id, j.actor_id, j.start_ts, j.end_ts, j.outcome, j.censored, j.n_steps,
                      CAST(j.segments AS VARCHAR)), d.digest)::HUGEINT) AS h
  FROM _jg_jclass c JOIN journeys j ON j.rowid = c.jix JOIN _jg_step_digest d ON d.jix = c.jix
  GROUP BY c.cls)
SELECT cs.sid, sum(per.n)::BIGINT, sum(per.h)::VARCHAR
FROM per JOIN _jg_csid cs USING (cls) WHERE list_contains($sids, cs.sid) GROUP BY cs.sid ORDER BY cs.sid
"""


@dataclass
class Sealed:
    """Per sealed scope id: its key; and the stored payloads found for some of them (those are reused)."""

    keys: dict[int, str] = field(default_factory=dict)
    stored: dict[int, dict[str, Any]] = field(default_factory=dict)


def find(con: Any, steps: StepArrays, window_s: int, base: Mapping[str, Any], journey: str,
         lifecycle: bool) -> Sealed:
    """The sealed scopes of this build, their keys, and the stored snapshots to reuse (after the class tables)."""
    candidates = con.execute(_CANDIDATES_SQL, {"window": int(window_s)}).fetchall()
    if not candidates:
        return Sealed()
    sids = [c[0] for c in candidates]
    members = con.execute(_MEMBERS_SQL, {"sids": sids}).fetchnumpy()["jix"].astype(np.int64)
    wanted = np.zeros(steps.size, dtype=bool)
    wanted[members] = True
    con.register("_jg_step_digest_arrow", pa.table({"jix": members, "digest": step_digests(steps, wanted)[members]}))
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _jg_step_digest AS SELECT jix, digest FROM _jg_step_digest_arrow")
    finally:
        con.unregister("_jg_step_digest_arrow")
    digests = {sid: (n, h) for sid, n, h in con.execute(_DIGESTS_SQL, {"sids": sids}).fetchall()}
    con.execute("DROP TABLE IF EXISTS _jg_step_digest")
    sealed = Sealed()
    for sid, tenant, scope, release, w_start, w_end in candidates:
        n, h = digests.get(sid, (0, "0"))
        sealed.keys[sid] = content_id("sealed_scope", {
            "config_hash": base["config_hash"], "engine_version": base["engine_version"], "tenant_id": tenant,
            "journey": journey, "scope": scope, "release": release or None, "window": [str(w_start), str(w_end)],
            "journeys": n, "digest": h, "lifecycle": lifecycle})
    if os.environ.get(FULL_ENV) != "1":
        sealed.stored = _stored(con, sealed.keys)
    return sealed


def _stored(con: Any, keys: dict[int, str]) -> dict[int, dict[str, Any]]:
    """Stored payloads by sealed key (any run's), for the scopes of this build."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'snapshots'").fetchall()[0][0]:
        return {}
    rows = con.execute("SELECT payload->>'sealed_key', min(payload::VARCHAR) FROM snapshots "
                       "WHERE list_contains(?, payload->>'sealed_key') GROUP BY 1", [sorted(keys.values())]).fetchall()
    by_key = {key: json.loads(text) for key, text in rows}
    return {sid: by_key[key] for sid, key in keys.items() if key in by_key}


def step_digests(steps: StepArrays, wanted: np.ndarray | None = None) -> np.ndarray:
    """Per jix, a digest of its steps in order (state name, time, place in the journey); 0 without steps or
    outside `wanted` (a mask by jix). Order-sensitive and wrapping (uint64): a mixed value per step, summed
    per journey.

    Made in place on three step-sized words: at 10 M events each fresh step-sized temporary costs its page
    faults, and the plain expression made some twenty of them (1.3 CPU-s in a build, 0.35 when warm). When
    most steps are wanted (a full run: every sealed week) the journeys left out are digested too and dropped,
    which beats picking the wanted steps out first."""
    out = np.zeros(steps.size, dtype=np.uint64)
    if not len(steps.jix):
        return out
    starts = np.flatnonzero(_run_starts(steps.jix))
    lens = np.diff(np.append(starts, len(steps.jix)))
    owner = steps.jix[starts]
    keep = wanted[owner] if wanted is not None else np.ones(len(starts), dtype=bool)
    if not keep.any():
        return out
    state, ts = steps.state, steps.ts
    if 2 * int(lens[keep].sum()) < len(state):  # few steps wanted: digest only theirs
        at = np.flatnonzero(np.repeat(keep, lens))
        state, ts, owner, lens = state[at], ts[at], owner[keep], lens[keep]
        starts, keep = np.cumsum(lens) - lens, np.ones(len(lens), dtype=bool)
    name_h = np.array([_h64(str(n)) for n in steps.names.to_pylist()] + [_h64("\x00null")], dtype=np.uint64)
    x = name_h[state]  # a NULL state (-1) takes the last hash
    word, spare = ts.view(np.uint64).copy(), np.empty(len(state), dtype=np.uint64)
    x ^= _mix_in_place(word, spare)
    place = word.view(np.int64)  # each step's place in its journey + 1: a sum of ones, reset at each journey
    place.fill(1)
    place[starts[1:]] = 1 - lens[:-1]
    np.cumsum(place, out=place)
    x ^= _mix_in_place(word, spare)
    with np.errstate(over="ignore"):
        digests = np.add.reduceat(_mix_in_place(x, spare), starts)
    out[owner[keep]] = digests[keep]
    return out


def _run_starts(jix: np.ndarray) -> np.ndarray:
    """Where each journey's run of steps starts (a mask)."""
    new = np.ones(len(jix), dtype=bool)
    np.not_equal(jix[1:], jix[:-1], out=new[1:])
    return new


def _h64(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def _mix_in_place(x: np.ndarray, spare: np.ndarray) -> np.ndarray:
    """`_mix` of `x`, written over `x` (`spare`: a scratch word as long, overwritten); returns `x`."""
    with np.errstate(over="ignore"):
        for shift, factor in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB), (31, None)):
            np.right_shift(x, np.uint64(shift), out=spare)
            x ^= spare
            if factor is not None:
                x *= np.uint64(factor)
    return x


def restamp(stored: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
    """A stored sealed payload as this run's snapshot: this run's input hash and the id it implies."""
    from engine.snapshot import snapshot_identity

    payload = {**stored, **base}
    payload["snapshot_id"] = snapshot_identity(base, payload["tenant_id"], payload["journey"], payload["scope"],
                                               payload["window"], payload.get("segment"), payload.get("release"))
    return payload
