"""Reach, path shares and median durations from journeys still in progress (engine.snapshot_estimates, engine.ipcw).

Simulation with known truth (tests/engine/censoring_sim.py, journey study): four censoring patterns, among them
outcome-dependent durations and growing traffic, where the naive "ended by the data end" estimators are biased.
Bounds are derived from the Monte-Carlo standard error (4 SE), not fixed constants. Then the snapshot: every
scope with nothing censored reproduces the completed-only numbers exactly, and a censored scope's estimates
recompute from the raw journey tables.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from engine import incidence, ipcw
from engine.snapshot import build_snapshots
from fixtures import paper_chain as pc
from tests.engine import censoring_sim as sim

REPS, N, SPAN = 300, 1000, 45.0  # span 45 d against a 30 d window: a third of the journeys is still open


@pytest.fixture(scope="module", params=sim.PATTERNS, ids=lambda p: p.name)
def study(request):
    return request.param, sim.journey_study(request.param, REPS, N, SPAN, seed=14)


def test_new_estimators_are_unbiased(study):
    _, res = study
    new = res["new"]
    assert np.all(np.abs(new["bias"]) <= 4 * new["bias_se"]), dict(zip(sim.QUANTITIES, new["bias"] / new["bias_se"]))


def test_new_intervals_cover_at_the_nominal_rate(study):
    _, res = study
    tolerance = 4 * np.sqrt(0.95 * 0.05 / REPS)  # 4 binomial SE of a coverage estimated from REPS replicates
    assert np.all(np.abs(res["new"]["coverage"] - 0.95) <= tolerance), dict(zip(sim.QUANTITIES, res["new"]["coverage"]))


def test_naive_rule_is_biased_and_the_old_one_wastes_journeys(study):
    pattern, res = study
    naive, old, new = res["naive"], res["old"], res["new"]
    median = sim.QUANTITIES.index("median_D")
    assert naive["bias"][median] < -4 * naive["bias_se"][median]  # finished-by-the-end journeys are the short ones
    if pattern.convert_mean != pattern.drop_mean:
        assert np.abs(naive["bias"][1:5]).max() > 4 * naive["bias_se"][1:5].max()  # path shares too
    assert np.all(new["rmse"][:5] < old["rmse"][:5])  # the mature-only rule is unbiased but uses far fewer journeys
    assert res["n"]["used"][1] < 0.5 * N


def test_equal_weights_give_the_plain_share_and_sample_median():
    rng = np.random.default_rng(5)
    for n in (101, 100):  # odd and even
        values = rng.exponential(3.0, n).round(2)
        ones = ipcw.weights(values, np.ones(n, bool), np.full(n, 10.0 ** 6))
        assert np.all(ones == 1.0)
        med = ipcw.median(values, ones)
        assert med.estimate == pytest.approx(float(np.median(values)), abs=1e-12)
        assert med.lower is not None and med.upper is not None and med.lower <= med.estimate <= med.upper
    keys = rng.integers(0, 3, 500)
    sh = ipcw.shares(keys, np.ones(500), 3)
    assert list(sh.estimate) == [np.sum(keys == k) / 500 for k in range(3)]


def test_first_entry_without_censoring_is_the_visiting_share():
    n = 200
    visited = np.arange(0, n, 4)
    inc = incidence.first_entry(np.full(n, 5.0), np.ones(n, bool), visited, np.full(len(visited), 1.0), 30.0)
    assert inc.estimate[0] == pytest.approx(len(visited) / n, abs=1e-12)


def test_weights_undo_the_selection_of_short_journeys():
    follow = np.array([1.0, 2.0, 3.0, 4.0])   # four journeys, followed up 1..4 days
    known = np.array([0.5, 3.0, 2.5, 3.5])    # when each one's end became known
    w = ipcw.weights(known, known <= follow, follow)
    assert list(w) == [1.0, 0.0, 2.0, 4.0]    # known at 2.5 d: 2 of 4 journeys followed that long; at 3.5 d: 1 of 4


# ------------------------------------------------------------------------------------------
# On the snapshot
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_snaps():
    con = duckdb.connect()
    data_end = pc.load_simulation(con, 3000, 11, late_journeys=400)
    cfg = pc.config()
    snaps = build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
    yield con, snaps, data_end
    con.close()


def test_uncensored_scopes_reproduce_the_completed_only_numbers(sim_snaps):
    _, snaps, _ = sim_snaps
    plain = [s.payload for s in snaps if s.payload["censored"] == 0 and s.payload["completed"]]
    assert plain
    for p in plain:
        assert {s: e["estimate"] for s, e in p["reach_estimates"].items()} == {
            s: round(c / p["completed"], 6) for s, c in p["reach_counts"].items()}
        assert [(t["path"], t["outcome"], t["share"]) for t in p["path_estimates"]["top"]] == [
            (t["path"], t["outcome"], t["share"]) for t in p["paths"]["top"]]
        assert p["duration_estimates"]["median_s"] == p["durations"]["median_s"]
        assert p["estimators"]["reach_estimates"].startswith("aalen_johansen_first_entry")


def test_censored_scope_recomputes_from_the_raw_tables(sim_snaps):
    con, snaps, data_end = sim_snaps
    p = next(s.payload for s in snaps if s.payload["scope"] == "all")
    assert p["censored"] > 0
    rows = con.execute("""SELECT j.journey_id, epoch(j.start_ts), epoch(j.end_ts), j.outcome, j.censored
                          FROM journeys j ORDER BY journey_id""").fetchall()
    steps = con.execute("SELECT journey_id, state, epoch(ts) FROM journey_steps ORDER BY journey_id, step").fetchall()
    end = con.execute("SELECT epoch(?::TIMESTAMP)", [data_end]).fetchall()[0][0]
    visits: dict[str, dict[str, float]] = {}
    for jid, state, ts in steps:
        visits.setdefault(jid, {}).setdefault(state, ts)
    # the paper chain's censored journeys end after the data end: all open, none resolved early
    follow = np.array([end - s for _, s, _, _, _ in rows])
    ended = np.array([not c for *_, c in rows])
    t_end = np.where(ended, np.array([e - s for _, s, e, _, _ in rows]), follow)
    for state, est in p["reach_estimates"].items():
        hit = [i for i, r in enumerate(rows) if state in visits.get(r[0], {})]
        first = np.array([visits[rows[i][0]][state] - rows[i][1] for i in hit])
        inc = incidence.first_entry(t_end, ended, np.array(hit, dtype=np.int64), first, float(p["journey_window_s"]))
        assert est["estimate"] == pytest.approx(inc.estimate[0], abs=1e-6), state
    assert p["path_estimates"]["resolved"] == int(ended.sum()) == p["completed"]


def test_step_shares_weighted_for_entry_time_are_unbiased_and_cover():
    truth, truth_se = sim.step_share_truth()
    rng = np.random.default_rng(21)
    runs = [sim.step_share_replicate(2000, 40.0, rng) for _ in range(REPS)]
    est = np.array([r["ipcw"][0] for r in runs])
    se = np.array([r["ipcw"][1] for r in runs])
    plain = np.array([r["plain"][0] for r in runs])
    bound = 4 * np.sqrt(est.var(ddof=1) / REPS + truth_se ** 2)
    assert abs(est.mean() - truth) <= bound
    assert plain.mean() - truth > 4 * np.sqrt(plain.var(ddof=1) / REPS + truth_se ** 2)  # early steps over-represented
    covered = np.mean(np.abs(est - truth) <= incidence.Z95 * se)
    assert abs(covered - 0.95) <= 4 * np.sqrt(0.95 * 0.05 / REPS)  # the truth's own SE is < 0.1 of se: ignored


def test_resolved_shares_count_the_resolved_steps(sim_snaps):
    _, snaps, _ = sim_snaps
    for snap in snaps:
        p = snap.payload
        assert {(t["from"], t["to"]): t["count"] for t in p["resolved_shares"]} == {
            (t["from"], t["to"]): t["count"] for t in p["resolved_transitions"]}
        if p["mature"] and p["censored"] == 0:  # every weight is 1: the plain count ratio
            totals: dict[str, int] = {}
            for t in p["resolved_transitions"]:
                totals[t["from"]] = totals.get(t["from"], 0) + t["count"]
            assert [t["share"] for t in p["resolved_shares"]] == [
                round(t["count"] / totals[t["from"]], 6) for t in p["resolved_shares"]]


@pytest.mark.parametrize("collapse", [False, True])
def test_numpy_steps_equal_the_sql_reference(sim_snaps, monkeypatch, collapse):
    """The snapshot derives resolved steps and first visits from one fetch in numpy (StepRows); engine.resolved
    recounts with STEPS_SQL (windowed JOURNEYS_PER_FETCH journey rows at a time) and a GROUP BY. Both must give
    the same rows, and the snapshots must not change when the SQL slices cut classes in two."""
    import dataclasses

    from engine import step_shares

    con, _, data_end = sim_snaps
    cfg = pc.config()
    journey = dataclasses.replace(cfg.journeys[0], collapse_self_loops=collapse)
    monkeypatch.setattr(step_shares, "JOURNEYS_PER_FETCH", 37)
    compared = []
    real_resolved = step_shares.StepRows.resolved

    def checked(self):
        mine = real_resolved(self)
        ref = step_shares.Steps.query(con, "_jg_est", {"journey": journey.name, "collapse": collapse,
                                                        "horizon": self.horizon})
        name = np.array(mine.names + ["?"])
        ref_name = np.array(ref.names)
        order = np.lexsort((name[mine.dst], name[mine.src], mine.s, mine.row))
        ref_order = np.lexsort((ref_name[ref.dst], ref_name[ref.src], ref.s, ref.row))
        assert np.array_equal(mine.row[order], ref.row[ref_order]) and np.array_equal(mine.s[order], ref.s[ref_order])
        assert np.array_equal(name[mine.src][order], ref_name[ref.src][ref_order])
        assert np.array_equal(name[mine.dst][order], ref_name[ref.dst][ref_order])
        assert np.array_equal(mine.known_t[order], ref.known_t[ref_order], equal_nan=True)
        visits = con.execute("""SELECT r.jrow, s.state, greatest(epoch(min(s.ts) - any_value(r.start_ts)), 0)::DOUBLE
                                FROM journey_steps s JOIN _jg_est r USING (journey_id) WHERE s.state IS NOT NULL
                                GROUP BY r.jrow, s.state ORDER BY 1, 2""").fetchall()
        row, state, t, names = self.first_visits()
        assert sorted(zip(row.tolist(), [names[c] for c in state], t.tolist())) == visits
        compared.append(len(mine.row))
        return mine

    monkeypatch.setattr(step_shares.StepRows, "resolved", checked)
    build_snapshots(con, cfg, journey, "sim", "0.1.0", data_end=data_end)
    assert compared and compared[0] > 1000
