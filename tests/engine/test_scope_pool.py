"""engine.scope_pool: per-scope estimates on two threads within the largest scope's memory, same results.

The waits below are bounded only so a broken scheduler fails instead of hanging; no assertion is about time.
"""

from __future__ import annotations

import json
import random
import threading

import duckdb
import pytest

from engine import scope_pool, snapshot_estimates
from engine.snapshot import build_snapshots
from fixtures import paper_chain as pc

WAIT_S = 30.0


def test_results_come_back_in_the_jobs_order_whatever_ran_first():
    jobs = [scope_pool.Job(key, size, lambda key=key: key * 10) for key, size in [(3, 1), (1, 9), (2, 5), (7, 9)]]
    out = scope_pool.run(jobs, workers=2)
    assert list(out) == [3, 1, 2, 7]
    assert out == {3: 30, 1: 10, 2: 20, 7: 70}


def test_small_jobs_run_together():
    started = {key: threading.Event() for key in ("a", "b")}

    def job(me: str, other: str) -> bool:
        started[me].set()
        return started[other].wait(WAIT_S)  # true only if the other job started while this one ran

    jobs = [scope_pool.Job("big", 10, lambda: True), scope_pool.Job("a", 4, lambda: job("a", "b")),
            scope_pool.Job("b", 5, lambda: job("b", "a"))]
    assert scope_pool.run(jobs, workers=2) == {"big": True, "a": True, "b": True}


def test_the_largest_job_runs_alone():
    others_started = threading.Event()
    overlapped = []

    def big() -> str:
        overlapped.append(others_started.wait(0.5))  # a budget-blind scheduler starts the next job meanwhile
        return "big"

    def small(name: str) -> str:
        others_started.set()
        return name

    jobs = [scope_pool.Job("s1", 3, lambda: small("s1")), scope_pool.Job("big", 10, big),
            scope_pool.Job("s2", 8, lambda: small("s2"))]
    assert scope_pool.run(jobs, workers=2) == {"s1": "s1", "big": "big", "s2": "s2"}
    assert overlapped == [False]


def test_an_error_reaches_the_caller_and_stops_the_rest():
    ran = []

    def boom() -> None:
        raise ValueError("scope failed")

    jobs = [scope_pool.Job("boom", 10, boom)] + [scope_pool.Job(i, 10, lambda i=i: ran.append(i)) for i in range(5)]
    with pytest.raises(ValueError, match="scope failed"):
        scope_pool.run(jobs, workers=2)
    assert len(ran) <= 1  # equal sizes run one at a time: at most the one already started when it failed


def test_snapshots_are_identical_on_one_and_two_threads(monkeypatch):
    payloads = []
    for workers in (1, 2):
        monkeypatch.setattr(scope_pool, "MAX_WORKERS", workers)
        con = duckdb.connect()
        data_end = pc.load_simulation(con, 3000, 11, late_journeys=400)
        cfg = pc.config()
        snaps = build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
        payloads.append([s.payload_json for s in snaps])
        con.close()
    assert len(payloads[0]) > 2  # several scopes, so two threads had work to share
    assert payloads[0] == payloads[1]


def test_scopes_holding_the_same_journeys_are_estimated_once(monkeypatch):
    """The simulation's release windows are periods too: each estimate is computed once for both scopes, and the
    payloads are the bytes a computation per scope gives."""
    computed = []
    shared = snapshot_estimates._Shared

    def counted(rows, classes):
        computed.append(tuple(classes))
        return shared(rows, classes)

    monkeypatch.setattr(snapshot_estimates, "_Shared", counted)
    grouped = _payloads()
    assert len(computed) == len(set(computed)) < len(grouped)  # some scopes shared their estimates
    by_scope = {(p["scope"], p["window"]["start"]): p for p in map(json.loads, grouped)}
    after, period = by_scope[("release_after", "2026-01-19T00:00:00Z")], by_scope[("period", "2026-01-19T00:00:00Z")]
    before = by_scope[("release_before", "2026-01-12T00:00:00Z")]
    assert after["reach_estimates"] == period["reach_estimates"] != before["reach_estimates"]
    monkeypatch.setattr(scope_pool, "same_members", lambda members: [(list(c), [sid]) for sid, c in members])
    computed.clear()
    assert _payloads() == grouped  # one computation per scope: the same bytes
    assert len(computed) == len(grouped)


def _payloads() -> list[str]:
    con = duckdb.connect()
    data_end = pc.load_simulation(con, 3000, 11, late_journeys=400)
    cfg = pc.config()
    snaps = build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
    con.close()
    return [s.payload_json for s in snaps]


def test_a_budget_lets_parts_of_the_largest_run_together_and_a_larger_job_alone():
    started = {key: threading.Event() for key in ("a", "b")}
    overlapped = []

    def part(me: str, other: str) -> bool:
        started[me].set()
        return started[other].wait(WAIT_S)

    def big() -> str:
        overlapped.append(started["a"].is_set() != started["b"].is_set())  # one part started, the other not
        return "big"

    jobs = [scope_pool.Job("a", 6, lambda: part("a", "b")), scope_pool.Job("b", 6, lambda: part("b", "a")),
            scope_pool.Job("big", 11, big)]
    assert scope_pool.run(jobs, workers=2, budget=12) == {"a": True, "b": True, "big": "big"}
    assert overlapped == [False]  # larger than the budget: it ran before both parts, alone


def test_the_parts_assemble_the_same_payloads_whatever_order_they_finish_in(monkeypatch):
    """Each scope's parts are put together in one order: a pool whose results come back in a shuffled order
    (keys included) gives the bytes of one thread running them in turn."""
    monkeypatch.setattr(scope_pool, "MAX_WORKERS", 1)
    in_turn = _payloads()
    shared_built = []
    shared = snapshot_estimates._Shared

    def counted(rows, classes):
        shared_built.append(tuple(classes))
        return shared(rows, classes)

    def shuffled(jobs, workers=None, budget=None):
        order = list(jobs)
        random.Random(7).shuffle(order)
        return {job.key: job.run() for job in order}  # finished (and handed back) in a shuffled order

    monkeypatch.setattr(snapshot_estimates, "_Shared", counted)
    monkeypatch.setattr(scope_pool, "run", shuffled)
    assert _payloads() == in_turn
    assert len(shared_built) == len(set(shared_built)) > 2  # what the parts share: built once per scope


def test_a_failing_part_fails_the_build(monkeypatch):
    def boom(self, shared):
        raise RuntimeError("state part failed")

    monkeypatch.setattr(snapshot_estimates._Scope, "_states", boom)
    for workers in (1, 2):
        monkeypatch.setattr(scope_pool, "MAX_WORKERS", workers)
        with pytest.raises(RuntimeError, match="state part failed"):
            _payloads()


def test_what_the_parts_share_goes_with_the_last_one(monkeypatch):
    scopes = []
    scope = snapshot_estimates._Scope

    def kept(*args):
        scopes.append(scope(*args))
        return scopes[-1]

    monkeypatch.setattr(snapshot_estimates, "_Scope", kept)
    _payloads()
    assert scopes and all(s._shared is None and s._left == 0 for s in scopes)
