"""Drop-off points from journeys still in progress (issue 14): found before a window has passed, none on null.

Stream: the demo chain, 1,200 sign-ups over 32 days, a 30-day window and a 3-day inactivity outcome, so
about 93 % of journeys are censored and the completed-only rule sees the first 2 days of sign-ups (88
journeys). billing_page loses most of its visitors (the demo's planted drop-off). The completed-only
detector is run on the same snapshots with the `loss_estimates` block taken out.
"""

from __future__ import annotations

import pytest

from detectors.dropoff import Dropoff, loss_evidence, uses_estimates
from detectors.runner import run_detectors
from detectors.view import SnapView
from engine import loss_estimates
from engine.snapshot import Snapshot
from fixtures import paper_chain as pc
from fixtures.generate_demo import DemoParams
from tests.detectors.release_streams import planted_or_null, release_stream, simulated_chain_snapshots

BILLING = "state:billing_page"


def _completed_only(snaps: list) -> list:
    return [Snapshot.from_payload({k: v for k, v in s.payload.items() if k != "loss_estimates"}) for s in snaps]


@pytest.fixture(scope="module", params=["planted", "null"])
def young(request, tmp_path_factory):
    kw = {"n_users": 1200, "days": 32, "release_day": 30, "seed": 7}
    where = tmp_path_factory.mktemp(request.param)
    snaps, cfg = planted_or_null(request.param, where, 2, **kw)
    return request.param, snaps, cfg, where / "ws"


def _dropoffs(snaps: list, cfg) -> list:
    return [f for f in run_detectors(snaps, cfg).findings if f.type in Dropoff.types]


def test_stream_is_mostly_censored(young):
    _, snaps, _, _ = young
    base = next(s for s in snaps if s.scope == "all").payload
    assert base["censored"] > 0.9 * base["journeys"] and base["loss_estimates"]["moves"] > 10 * base["completed"]


def test_planted_dropoff_found_from_estimates_before_the_completed_rule_can(young):
    kind, snaps, cfg, _ = young
    found = _dropoffs(snaps, cfg)
    if kind == "null":
        assert found == [] and _dropoffs(_completed_only(snaps), cfg) == []
        return
    everything = next(s for s in snaps if s.scope == "all")
    hit = [f for f in found if f.subject == BILLING and f.snapshot_id == everything.snapshot_id]
    assert len(hit) == 1
    ev = hit[0].evidence
    assert ev["estimator"] == loss_estimates.ESTIMATOR and ev["q_value"] <= 0.05
    assert ev["exit_probability"] > ev["baseline_exit"] + 0.3 and ev["journeys"] > 10 * everything.payload["completed"]
    assert hit[0].n == round(ev["n_eff"]) and ev["moves_resolved"] >= hit[0].n >= 50
    assert ev["journeys_complete"] + ev["journeys_partial"] + ev["journeys_unobserved"] == ev["journeys"]
    stake = ev["at_stake"]  # detectors.stake: estimated lost journeys leaving billing_page, per journey
    assert stake["measure"] == "losses"
    assert stake["per_journey"] == pytest.approx(ev["loss_share"] * ev["lost_journeys"] / ev["journeys"], abs=2e-6)
    old = [f for f in _dropoffs(_completed_only(snaps), cfg) if f.subject == BILLING]
    assert old == []  # 88 finished journeys cannot tell yet


def _flat(block: dict) -> dict:
    out = {k: v for k, v in block.items() if k not in ("states", "moments")}
    out.update({f"moments.{k}": v for k, v in block["moments"].items()})
    out.update({f"{s}.{k}": v for s, row in block["states"].items() for k, v in row.items()})
    return out


def test_the_raw_tables_recount_every_scope_block(young):
    """engine.resolved (STEPS_SQL over the scope's journeys) gives each stored `loss_estimates` block again."""
    from engine.workspace import Workspace
    from narrator.recompute import recount, snapshot_row

    _, snaps, _, where = young
    ws = Workspace.open(where, create=False, read_only=True)
    con = ws.con
    try:
        for snap in snaps:
            if snap.scope not in ("all", "period"):
                continue
            stored, again = _flat(snap.payload["loss_estimates"]), _flat(recount(con, snapshot_row(con, snap.snapshot_id))["loss_estimates"])
            assert stored.keys() == again.keys()
            assert all(again[k] == pytest.approx(v, rel=1e-9, abs=2e-6) for k, v in stored.items()), snap.scope
    finally:
        ws.close()


@pytest.fixture(scope="module")
def mature_snaps():
    return simulated_chain_snapshots()


def test_with_nothing_censored_the_estimates_are_the_completed_counts(mature_snaps):
    plain = [SnapView(s) for s in mature_snaps if s.payload["censored"] == 0 and s.payload["completed"]]
    assert plain
    for view in plain:
        assert not uses_estimates(view)
        block = view.payload["loss_estimates"]
        for state in view.states:
            if not view.out_total(state):
                continue
            t, ev = loss_estimates.loss_test(block, [state]), loss_evidence(view, [state])
            assert (t.exit_probability, t.baseline_exit, t.loss_share) == (
                ev["exit_probability"], ev["baseline_exit"], ev["loss_share"])
            assert (t.moves, t.exits, t.exit_weight, t.lost_journeys) == (ev["n"], ev["exits"], ev["exits"],
                                                                           ev["lost_journeys"])


def test_an_uncensored_scope_reads_its_completed_counts_unchanged(mature_snaps):
    """Taking the block out of the uncensored snapshots changes no finding of the run (q-values included)."""
    cfg = pc.config()
    stripped = [s if s.payload["censored"] else _completed_only([s])[0] for s in mature_snaps]
    assert any(s.payload["censored"] for s in mature_snaps) and any(not s.payload["censored"] for s in mature_snaps)
    with_block, without = _dropoffs(mature_snaps, cfg), _dropoffs(stripped, cfg)
    assert with_block and [f.to_dict() for f in with_block] == [f.to_dict() for f in without]
    assert any("estimator" in f.evidence for f in with_block)  # the censored all-data scope: estimates
    assert any("estimator" not in f.evidence for f in with_block)


def _cluster_snapshot(n: int, seed: int) -> Snapshot:
    """a → b → c → converted, b and c each losing half their journeys, half the journeys still open: the payload's
    in-progress blocks built by the engine's own functions from the simulated steps."""
    import numpy as np

    from detectors.synthetic import chain_payload
    from engine import step_shares

    rng = np.random.default_rng(seed)
    names = ["a", "b", "c", "converted", "dropped"]
    loss = {0: 0.1, 1: 0.5, 2: 0.5}
    row, s, src, dst, end = [], [], [], [], np.zeros(n)
    for j in range(n):  # a few thousand journeys of at most three steps
        t = 0.0
        for k in range(3):
            gap = rng.exponential(2.0)
            lost = rng.random() < loss[k] or gap > 5.0
            row.append(j), s.append(t), src.append(k), dst.append(4 if lost else k + 1 if k < 2 else 3)
            if lost or k == 2:
                end[j] = t + (5.0 if lost else gap)
                break
            t += gap
    row_a, s_a = np.array(row), np.array(s)
    follow = np.where(np.arange(n) % 2 == 0, 60.0, rng.random(n) * 30.0)  # half complete, half open
    known = end <= follow
    keep = (s_a + 5.0 <= follow[row_a]) | known[row_a]
    steps = step_shares.Steps(row=row_a[keep], s=s_a[keep], known_t=np.where(known, end, np.nan)[row_a[keep]],
                              src=np.array(src)[keep], dst=np.array(dst)[keep], names=names)
    done = step_shares.counted(steps, np.arange(int(keep.sum())), row_a[keep], follow, 30.0, 5)
    payload = chain_payload({"a": {"b": 0.9, "dropped": 0.1}, "b": {"c": 0.5, "dropped": 0.5},
                             "c": {"converted": 0.5, "dropped": 0.5}}, journeys=n // 2, start="a")
    reached = {x: int(np.unique(row_a[np.array(src) == i]).size) for i, x in enumerate(names[:3])}
    payload.update(journeys=n, censored=n // 2, journey_window_s=30, observation={"complete": int(known.sum())},
                   loss_estimates=loss_estimates.block(steps, done, follow, 30.0, 5, ["dropped"]),
                   resolved_shares=step_shares.shares(steps, done.pick, done.pos, follow, 30.0, 5, done),
                   reach_estimates={x: {"estimate": c / n, "reached": c} for x, c in reached.items()})
    return Snapshot.from_payload(payload)


def test_linked_dropoff_states_form_one_cluster_tested_on_their_pooled_moves():
    from tests.detectors.detector_builders import make_cfg

    snap = _cluster_snapshot(3000, 4)
    view = SnapView(snap)
    assert uses_estimates(view)
    found = [f for f in run_detectors([snap], make_cfg()).findings if f.type in Dropoff.types]
    clusters = [f for f in found if f.type == "dropoff_cluster"]
    assert [f.subject for f in clusters] == ["path:b>c"]
    ev = clusters[0].evidence
    block = view.payload["loss_estimates"]["states"]
    pooled = sum(block[x]["exit_weight"] for x in "bc") / sum(block[x]["moves_weight"] for x in "bc")
    assert ev["states"] == ["b", "c"] and ev["exit_probability"] == pytest.approx(pooled, abs=1e-6)
    assert ev["estimator"] == loss_estimates.ESTIMATOR and clusters[0].p_value < 1e-6
    # each lost journey leaves from one state: the cluster's share of losses is its members' shares added up
    assert ev["loss_share"] == pytest.approx(sum(loss_evidence(view, [x])["loss_share"] for x in "bc"), abs=2e-6)
    assert ev["lost_journeys"] == loss_evidence(view, ["a"])["lost_journeys"] > 0


def test_a_scope_with_no_finished_journey_is_read_from_its_early_moves(tmp_path):
    """25 days of a 30-day window: not one journey complete, the completed-only counts are empty; the estimates
    cover the moves made in the journeys' first days and say how far (positivity)."""
    snaps, cfg = release_stream(DemoParams(n_users=2000, days=25, release_day=23, seed=7), tmp_path, 2)
    everything = next(s for s in snaps if s.scope == "all")
    assert everything.payload["completed"] == 0
    found = [f for f in _dropoffs(snaps, cfg) if f.snapshot_id == everything.snapshot_id]
    assert [f.subject for f in found] == [BILLING]
    ev = found[0].evidence
    assert 0 < ev["entered_within_s"] < everything.payload["journey_window_s"]
    assert ev["entered_within_s"] == everything.payload["loss_estimates"]["entered_within_s"]
    assert _dropoffs(_completed_only(snaps), cfg) == []
