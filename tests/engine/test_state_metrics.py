"""Many distinct states (issue #18 defect 5): removal effects from N agree with a direct solve per state,
including loops the removal traps; a generated 2,000-state workspace stores its metrics at run time and
its snapshot and graph views agree with a direct dense solve; the graph groups rare states; on-demand
work is capped. No timings are asserted (benchmarks/bench_views.py measures them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine import snapshot_store, state_metrics
from engine.app import pipeline, views
from engine.app.render import html, layout
from engine.markov import ChainMetrics, postdominator_intervals
from engine.workspace import Workspace
from fixtures import many_states
from ontology.errors import BadInput, EngineError, SingularSystemError

N_STATES = 2000


# --- an independent direct solve ------------------------------------------------------------

def direct_removed_row(m: ChainMetrics, k: int) -> np.ndarray:
    """B′(start, ·) after removing state k, by one dense solve (paper rule, trapped states drop off)."""
    n, drop = len(m.states), m.outcomes.index(m.dropoff_outcome)
    P = np.array(m.P, dtype=float)
    P[:, k] = 0.0
    P[k] = 0.0
    P[k, n + drop] = 1.0
    totals = P.sum(axis=1)
    P[totals == 0, n + drop] = 1.0  # the only edge went to k: drops off
    P /= P.sum(axis=1, keepdims=True)
    trapped = ~reaches_outcome(P[:, :n] > 0, P[:, n:].sum(axis=1) > 0)
    P[trapped] = 0.0
    P[trapped, n + drop] = 1.0
    start = m.states.index(m.start)
    return np.linalg.solve(np.eye(n) - P[:, :n], P[:, n:])[start]


def reaches_outcome(edges: np.ndarray, exits: np.ndarray) -> np.ndarray:
    can = exits.copy()
    while True:
        nxt = can | (edges & can[None, :]).any(axis=1)
        if (nxt == can).all():
            return can
        can = nxt


def random_chain(rng: np.random.Generator, n: int, exit_share: float) -> ChainMetrics | None:
    names = [f"s{i}" for i in range(n)]
    counts: dict[tuple[str, str], int] = {}
    for src in names:
        for dst in names:
            if rng.random() < 0.3:
                counts[(src, dst)] = int(rng.integers(1, 20))
        for o in ("converted", "dropped"):
            if rng.random() < exit_share:
                counts[(src, o)] = int(rng.integers(1, 20))
    m = ChainMetrics.from_counts(names, ("converted", "dropped"), counts, "s0", "converted", "dropped")
    try:
        m.N  # noqa: B018
    except SingularSystemError:
        return None
    return m


@pytest.mark.parametrize("exit_share", [0.4, 0.1])
def test_removal_from_n_matches_a_direct_solve_per_state(exit_share: float) -> None:
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(150):
        m = random_chain(rng, int(rng.integers(2, 10)), exit_share)
        if m is None:
            continue
        s = m.states.index(m.start)
        for k in range(len(m.states)):
            if k != s:
                expected = m.B[s] - direct_removed_row(m, k)
                assert np.allclose(m.removal_absolute_rows([k])[k], expected, atol=1e-9)
                checked += 1
    assert checked > 300


def test_postdominators_match_reachability_without_each_state() -> None:
    rng = np.random.default_rng(11)
    for _ in range(60):
        m = random_chain(rng, int(rng.integers(2, 12)), 0.15)
        if m is None:
            continue
        succ = [np.flatnonzero(r).tolist() for r in m.Q > 0]
        tin, tout = postdominator_intervals(succ, (m.R.sum(axis=1) > 0).tolist())
        n = len(m.states)
        for k in range(n):
            keep = np.ones(n, dtype=bool)
            keep[k] = False
            edges = (m.Q > 0) & keep[None, :] & keep[:, None]
            can = reaches_outcome(edges, (m.R.sum(axis=1) > 0) & keep)
            for x in range(n):
                cut = x == k or (tin[k] < tin[x] and tout[x] <= tout[k])
                assert cut == (not can[x]), (k, x)


# --- a generated 2,000-state workspace ------------------------------------------------------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many_states")
    events, config = many_states.write(root / "data", N_STATES)
    pipeline.run(str(events), config_path=str(config), workspace=str(root / "ws"), quiet=True)
    return root / "ws"


@pytest.fixture(scope="module")
def stored(workspace: Path) -> tuple[dict, ChainMetrics]:
    data = views.snapshot(str(workspace), journey="signup")
    ws = Workspace.open(str(workspace), create=False)
    try:
        snap = snapshot_store.load_snapshot(ws.con, data["snapshot_id"])
        assert state_metrics.load(ws.con, snap.snapshot_id) == data  # read from the stored table, not recomputed
    finally:
        ws.close()
    return data, snap.metrics


def dense_solve(data: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """States, B and N straight from the view's transition counts (an independent dense solve)."""
    names = [s["state"] for s in data["states"]]
    index = {s: i for i, s in enumerate(names + data["outcomes"])}
    C = np.zeros((len(names), len(index)))
    for t in data["transitions"]:
        C[index[t["from"]], index[t["to"]]] += t["count"]
    empty = C.sum(axis=1) == 0
    C[empty, index[data["outcomes"][-1]]] = 1.0
    P = C / C.sum(axis=1, keepdims=True)
    N = np.linalg.inv(np.eye(len(names)) - P[:, : len(names)])
    return names, N @ P[:, len(names):], N


def test_snapshot_view_of_2000_states_matches_a_direct_solve(stored: tuple[dict, ChainMetrics]) -> None:
    data, _ = stored
    assert len(data["states"]) > N_STATES * 0.95
    names, B, N = dense_solve(data)
    start = names.index(data["start_state"])
    for i in range(0, len(names), 97):  # spot checks across the whole state list
        row = data["states"][i]
        for j, o in enumerate(data["outcomes"]):
            assert row["absorption"][o] == pytest.approx(B[i, j], abs=2e-6)
        assert row["expected_visits"] == pytest.approx(N[start, i], abs=2e-6)
        assert row["expected_steps"] == pytest.approx(N[i].sum(), abs=2e-6)


def test_large_snapshot_reports_removal_outside_the_candidate_filter(stored: tuple[dict, ChainMetrics]) -> None:
    data, _ = stored
    block = data["removal_effect_candidates"]
    assert block["states"] == len(data["states"]) and "reach x lift x n" in block["rule"]
    skipped = [s for s in data["states"] if s.get("removal_effect_status") == state_metrics.NOT_COMPUTED]
    assert len(skipped) == block["not_computed"] > 0
    assert all(v is None for s in skipped for v in s["removal_effect"].values())
    assert all(v is not None for s in skipped for v in s["removal_effect_relative"].values())  # closed form: complete


def test_candidate_removal_effects_match_a_direct_solve(workspace: Path) -> None:
    ws = Workspace.open(str(workspace), create=False)
    try:
        snap = snapshot_store.load_snapshot(ws.con, views.snapshot(str(workspace), journey="signup")["snapshot_id"])
    finally:
        ws.close()
    data = state_metrics.compute(snap, min_n=1, limit=6)
    chosen = state_metrics.candidates(snap, min_n=1, limit=6)
    m = snap.metrics
    assert len(chosen) == 6 and data["removal_effect_candidates"]["computed"] == 6
    s = m.states.index(m.start)
    for row in data["states"]:
        if row["state"] in chosen:
            expected = m.B[s] - direct_removed_row(m, m.states.index(row["state"]))
            for j, o in enumerate(m.outcomes):
                assert row["removal_effect"][o] == pytest.approx(expected[j], abs=2e-6)


def test_graph_view_groups_rare_states_and_keeps_every_count(workspace: Path, stored: tuple[dict, ChainMetrics]) -> None:
    full, _ = stored
    data = views.graph(str(workspace), journey="signup", max_states=40)
    assert len(data["states"]) == 40 and full["start_state"] in {s["state"] for s in data["states"]}
    other = data["states"][-1]
    assert other["grouped_states"] == len(full["states"]) - 39 == data["grouped"]["states"]
    assert sum(t["count"] for t in data["transitions"]) == sum(t["count"] for t in full["transitions"])
    out: dict[str, float] = {}
    for t in data["transitions"]:
        out[t["from"]] = out.get(t["from"], 0.0) + t["probability"]
    assert all(v == pytest.approx(1.0, abs=1e-5) for v in out.values())
    with pytest.raises(BadInput, match=rf"{len(full['states'])} states is too large to draw \(at most 400\)"):  # work cap
        views.graph(str(workspace), journey="signup", max_states=5000)
    most = views.graph(str(workspace), journey="signup", max_states=layout.MAX_STATES)
    assert {n["name"] for n in most["layout"]["nodes"]} == {s["state"] for s in most["states"]} | set(full["outcomes"])


def test_on_demand_work_is_capped_with_a_clear_message(workspace: Path, tmp_path: Path) -> None:
    copy = tmp_path / "old"
    shutil.copytree(workspace, copy)
    ws = Workspace.open(str(copy), create=False)
    try:
        ws.con.execute("DROP TABLE state_metrics")  # a workspace from before metrics were stored
    finally:
        ws.close()
    with pytest.raises(EngineError, match=r"states and no stored metrics.*journeygraph run"):
        views.graph(str(copy), journey="signup", max_seconds=0.5)
    assert views.snapshot(str(copy), journey="signup")["states"]  # the CLI (no cap) still computes it


def test_run_skips_storing_chains_above_its_work_limit(workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import duckdb

    ws = Workspace.open(str(workspace), create=False)
    try:
        snaps = [snapshot_store.load_snapshot(ws.con, r["snapshot_id"]) for r in snapshot_store.list_snapshots(ws.con)]
    finally:
        ws.close()
    con = duckdb.connect()
    monkeypatch.setattr(state_metrics, "STORE_MAX_SECONDS", 0.0)
    assert state_metrics.store(con, snaps) == 0 and state_metrics.load(con, snaps[0].snapshot_id) is None
    monkeypatch.setattr(state_metrics, "STORE_MAX_SECONDS", 1e9)
    small = [s for s in snaps if len(s.payload["states"]) <= 50] or snaps[:1]
    assert state_metrics.store(con, small) == len(small)
    assert state_metrics.load(con, small[0].snapshot_id) == state_metrics.compute(small[0])


# --- the HTML feed draws from the stored metrics ---------------------------------------------

def count_solves(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record every chain solve: the dense N and the sparse LU, each wrapped where it is computed."""
    from functools import cached_property

    from engine.markov_sparse import SparseChain

    calls: list[str] = []
    for cls, name in ((ChainMetrics, "N"), (SparseChain, "_lu")):
        solve = cls.__dict__[name].func

        def counted(self: object, solve: object = solve, name: str = name) -> object:
            calls.append(name)
            return solve(self)  # type: ignore[operator]

        prop = cached_property(counted)
        prop.__set_name__(cls, name)
        monkeypatch.setattr(cls, name, prop)
    return calls


def test_html_feed_solves_no_chain_and_groups_rare_states(workspace: Path, stored: tuple[dict, ChainMetrics],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    full, _ = stored
    calls = count_solves(monkeypatch)
    page = views.feed(str(workspace), fmt="html")
    assert calls == []
    grouped = len(full["states"]) - html.GRAPH_STATES + 1
    assert f"The {grouped} states with the lowest reach are grouped" in page and f"other ({grouped} states)" in page
    # the hook does count: computing the metrics afresh solves the chain once (sparse above the filter)
    ws = Workspace.open(str(workspace), create=False)
    try:
        snap = snapshot_store.load_snapshot(ws.con, full["snapshot_id"])
    finally:
        ws.close()
    assert state_metrics.compute(snap) == full and calls == ["_lu"]


def test_stored_candidate_removal_effects_match_the_dense_chain(stored: tuple[dict, ChainMetrics]) -> None:
    data, dense = stored  # stored from the sparse chain; `dense` is the snapshot's own dense chain
    block = data["removal_effect_candidates"]
    solved = [r for r in data["states"] if r["state"] != data["start_state"] and "removal_effect_status" not in r]
    assert "browse" in {r["state"] for r in solved} and len(solved) == block["computed"]
    for row in solved:
        for o in data["outcomes"]:
            assert row["removal_effect"][o] == pytest.approx(dense.removal_effect(row["state"], o), abs=1e-6)
    for row in data["states"][::101]:
        if row["state"] != data["start_state"]:
            for o in data["outcomes"]:
                assert row["removal_effect_relative"][o] == pytest.approx(dense.removal_effect_relative(row["state"], o),
                                                                          abs=1e-6)


def test_sparse_chain_equals_the_dense_chain_on_2000_states(workspace: Path, stored: tuple[dict, ChainMetrics]) -> None:
    from engine.markov_sparse import SparseChain

    data, dense = stored
    ws = Workspace.open(str(workspace), create=False)
    try:
        snap = snapshot_store.load_snapshot(ws.con, data["snapshot_id"])
    finally:
        ws.close()
    p = snap.payload
    sp = SparseChain(p["states"], p["outcomes"], snap.counts, p["start_state"], p["conversion_outcome"],
                     p["dropoff_outcome"])
    np.testing.assert_allclose(sp.B, dense.B, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sp.expected_steps, dense.expected_steps, rtol=1e-9)
    np.testing.assert_allclose(sp._start_row, dense.N[dense.states.index(dense.start)], rtol=0, atol=1e-9)
    np.testing.assert_allclose(sp._diag_n, np.diag(dense.N), rtol=1e-9)
    picks = ["browse"] + [s for s in dense.states[1::250] if s != dense.start]
    ks = [dense.states.index(s) for s in picks]
    np.testing.assert_allclose(sp.removal_absolute_rows(ks)[ks], dense.removal_absolute_rows(ks)[ks], rtol=0, atol=1e-9)
