"""Activation drivers and revisits from journeys still in progress (issue 14): engine.state_estimates and
detectors.state_tests.

Simulation with known truth: a state A reached by 40 % of journeys, repeat visits, conversion depending on
both, and outcome-dependent durations (conversions slow, drop-offs fast), so among the *recent* journeys the
ones already ended are the quick drop-offs. The IPCW estimates are unbiased and their intervals cover; the
ended recent journeys, counted plainly, are biased. Bounds come from the Monte-Carlo standard error (4 SE).
Then the engine: nothing censored gives the completed-only numbers exactly (lifecycle-merged visits
included), a young demo stream shows the planted driver and loop from the estimates before the completed
journeys can, and its null twin stays silent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detectors import state_tests
from detectors.repeated_visit import revisit_evidence
from detectors.runner import run_detectors
from detectors.shared import estimated_reach_test, reach_test, reach_tests
from detectors.view import SnapView
from engine.incidence import Z95
from engine.snapshot import Snapshot
from engine.state_estimates import Journeys, block
from fixtures.generate_demo import DemoParams
from tests.detectors.release_streams import release_stream, simulated_chain_snapshots
from tests.detectors.test_honest_detectors import loan_snapshot  # noqa: F401  (a fixture: lifecycle events)

W, SPAN, N, REPS = 30.0, 45.0, 2000, 300
P_REACH, P_SINGLE_VISIT, BASE, SINGLE, REPEAT = 0.4, 0.6, 0.2, 0.5, 0.3
Q = 1 - np.exp(-W / 15.0)  # P(a converter converts within the window): conversion delay ~ exponential(15 d)
KEYS = ("p_reached", "p_not_reached", "visits_mean", "p_single", "p_repeat")
SE = {"p_reached": "se_reached", "p_not_reached": "se_not_reached", "visits_mean": "visits_se",
      "p_single": "se_single", "p_repeat": "se_repeat"}
TRUTH = {"p_reached": Q * (P_SINGLE_VISIT * SINGLE + (1 - P_SINGLE_VISIT) * REPEAT), "p_not_reached": Q * BASE,
         "visits_mean": 1 / P_SINGLE_VISIT, "p_single": Q * SINGLE, "p_repeat": Q * REPEAT}


def _replicate(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """(estimates, their se, the plain share among recent journeys already ended) of one simulated scope."""
    start = rng.random(N) * SPAN
    reached = rng.random(N) < P_REACH
    visits = rng.geometric(P_SINGLE_VISIT, N)
    p = np.where(reached, np.where(visits >= 2, REPEAT, SINGLE), BASE)
    conv = rng.random(N) < p
    delay = np.where(conv, rng.exponential(15.0, N), rng.exponential(3.0, N))  # slow conversions, fast drop-offs
    known_t = np.minimum(delay, W)
    follow = SPAN - start
    j = Journeys(known_t=known_t, ended=known_t <= follow, follow=follow, censored=start + W > SPAN,
                 converted=conv & (delay <= W))
    pos = np.flatnonzero(reached)
    e = block(j, pos, np.zeros(len(pos), np.int64), visits[pos], None, ["A"])["states"]["A"]
    recent = j.censored & j.ended
    naive = {"p_reached": float(j.converted[recent & reached].mean())}
    return {k: e[k] for k in KEYS}, {k: e[SE[k]] for k in KEYS}, naive


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(14)
    runs = [_replicate(rng) for _ in range(REPS)]
    est = {k: np.array([r[0][k] for r in runs]) for k in KEYS}
    se = {k: np.array([r[1][k] for r in runs]) for k in KEYS}
    naive = np.array([r[2]["p_reached"] for r in runs])
    return est, se, naive


def test_estimates_are_unbiased(study):
    est, _, _ = study
    for k in KEYS:
        bias, mc_se = est[k].mean() - TRUTH[k], est[k].std(ddof=1) / np.sqrt(REPS)
        assert abs(bias) <= 4 * mc_se, (k, bias, mc_se)


def test_intervals_cover_at_the_nominal_rate(study):
    est, se, _ = study
    tolerance = 4 * np.sqrt(0.95 * 0.05 / REPS)
    for k in KEYS:
        covered = np.mean(np.abs(est[k] - TRUTH[k]) <= Z95 * se[k])
        assert abs(covered - 0.95) <= tolerance, (k, covered)


def test_recent_journeys_already_ended_are_biased(study):
    est, _, naive = study
    bias, mc_se = naive.mean() - TRUTH["p_reached"], naive.std(ddof=1) / np.sqrt(REPS)
    assert bias < -4 * mc_se  # the quick drop-offs end first: conversion looks rarer than it is
    assert abs(est["p_reached"].mean() - TRUTH["p_reached"]) < abs(bias) / 4


# ------------------------------------------------------------------------------------------ the engine
@pytest.fixture(scope="module")
def chain_snaps():
    return simulated_chain_snapshots()


def test_nothing_censored_gives_the_completed_only_numbers_exactly(chain_snaps):
    plain = [s for s in chain_snaps if s.payload["censored"] == 0 and s.payload["completed"]]
    assert plain
    for snap in plain:
        p, view = snap.payload, SnapView(snap)
        est = p["state_estimates"]
        assert est["journeys"] == {"complete": p["completed"], "resolved_in_progress": 0, "unresolved": 0}
        assert set(est["states"]) == set(p["reach_counts"])
        assert state_tests.block(view) is None  # the detectors keep the completed-only counts
        for state, e in est["states"].items():
            n = p["reach_counts"][state]
            assert (e["visits_mean"], e["repeats"], e["n_eff_reached"]) == (
                round(p["visit_counts"][state] / n, 6), p["repeat_counts"][state], n)
            if state == view.start:
                continue
            forced, counted = estimated_reach_test(est, state), reach_test(view, state)
            assert forced is not None
            assert (forced.p_given_reached, forced.p_given_not_reached) == (
                round(counted.p_given_reached, 6), round(counted.p_given_not_reached, 6))
            assert (forced.n_reached, forced.n_not_reached) == (counted.n_reached, counted.n_not_reached)


def test_lifecycle_variants_are_one_visit_in_the_estimates_too(loan_snapshot):  # noqa: F811
    est = loan_snapshot.payload["state_estimates"]
    assert est["states"]["review"]["visits_mean"] == 4.0  # lifecycle events counted as visits: 120 / 30
    merged = est["lifecycle"]["review"]
    assert merged["visits_mean"] == round(40 / 30, 6) and merged["repeats"] == 10
    assert merged["p_repeat"] == 1.0 and merged["p_single"] == 0.0


def test_a_scope_without_a_complete_journey_is_not_estimable(chain_snaps):
    young = [s for s in chain_snaps if s.payload["completed"] == 0 and s.payload["journeys"]]
    assert young
    for snap in young:
        assert "note" in snap.payload["state_estimates"] and "states" not in snap.payload["state_estimates"]
        assert reach_tests(SnapView(snap)) == {}


def _completed_only(snaps: list) -> list:
    return [Snapshot.from_payload({k: v for k, v in s.payload.items() if k != "state_estimates"}) for s in snaps]


@pytest.fixture(scope="module", params=["planted", "null"])
def young(request, tmp_path_factory):
    """700 sign-ups over 36 days, a 30-day window: the completed-only rule sees the first 6 days (115 journeys)."""
    kw = {"n_users": 700, "days": 36, "release_day": 30, "seed": 7}
    params = DemoParams.null(**kw) if request.param == "null" else DemoParams(**kw)
    snaps, cfg = release_stream(params, Path(tmp_path_factory.mktemp(request.param)), 6)
    return request.param, snaps, cfg


def _found(snaps: list, cfg) -> list:
    types = ("activation_driver", "necessary_for_conversion", "repeated_visit")
    return [f for f in run_detectors(snaps, cfg).findings if f.type in types]


def test_planted_driver_and_loop_found_from_the_estimates_first(young):
    kind, snaps, cfg = young
    found = _found(snaps, cfg)
    assert _found(_completed_only(snaps), cfg) == []  # the completed journeys alone cannot tell yet
    if kind == "null":
        assert found == []
        return
    by_type = {f.type: f for f in found}
    assert set(by_type) == {"activation_driver", "repeated_visit"}
    driver, loop = by_type["activation_driver"], by_type["repeated_visit"]
    assert driver.subject == "state:import_data" and loop.subject == "state:settings"
    for f in (driver, loop):
        ev = f.evidence
        assert ev["estimator"] == "ipcw_hajek" and ev["q_value"] <= 0.05
        assert ev["journeys_resolved_in_progress"] > 3 * ev["journeys_complete"]  # journeys in progress count
    ev = driver.evidence
    assert ev["lift"] == pytest.approx(ev["p_given_reached"] / ev["p_given_not_reached"])
    assert driver.n > ev["n_reached"] and driver.n > 4 * ev["journeys_complete"]  # effective sizes of both sides
    assert loop.evidence["visits_mean"] > 2.0 and loop.evidence["test"] == "geometric_return_z"


def test_revisit_evidence_reads_the_estimates_with_effective_sizes(young):
    kind, snaps, _ = young
    view = SnapView(next(s for s in snaps if s.scope == "all"))
    ev = revisit_evidence(view, "settings", 2.0)
    e = view.payload["state_estimates"]["states"]["settings"]
    assert ev["estimator"] == "ipcw_hajek" and ev["visits_mean"] == e["visits_mean"]
    assert ev["n_reached"] == round(e["n_eff_reached"]) and ev["n_repeat"] == round(e["n_eff_repeat"])
    assert ev["conversion_gap"] == pytest.approx(e["p_single"] - e["p_repeat"])


def _estimated_scope(p_skip: float, seed: int = 3) -> Snapshot:
    """A scope whose completed journeys (the chain) have converters skipping b, with a `state_estimates` block
    from simulated censored journeys in which converters skip b with probability `p_skip` given a skip."""
    from detector_builders import snap

    rng = np.random.default_rng(seed)
    n = 4000
    start = rng.random(n) * SPAN
    reached = rng.random(n) < 0.5
    conv = rng.random(n) < np.where(reached, 0.6, p_skip)
    delay = np.where(conv, rng.exponential(15.0, n), rng.exponential(3.0, n))
    j = Journeys(known_t=np.minimum(delay, W), ended=np.minimum(delay, W) <= SPAN - start, follow=SPAN - start,
                 censored=start + W > SPAN, converted=conv & (delay <= W))
    pos = np.flatnonzero(reached)
    found = block(j, pos, np.zeros(len(pos), np.int64), np.ones(len(pos), np.int64), None, ["b"])
    base = snap({"sign_up": {"b": 0.5, "converted": 0.05, "dropped": 0.45}, "b": {"converted": 0.6, "dropped": 0.4}},
                journeys=n)
    return Snapshot.from_payload({**base.payload, "journeys": n, "censored": int(j.censored.sum()),
                                  "state_estimates": found})


@pytest.mark.parametrize("p_skip", [0.0, 0.03])
def test_nobody_converting_without_the_state_is_judged_on_the_estimates(p_skip):
    from detector_builders import make_cfg

    scope = _estimated_scope(p_skip)
    found = [f for f in run_detectors([scope], make_cfg()).findings if f.subject == "state:b"]
    assert len(found) == 1
    f = found[0]
    assert f.evidence["estimator"] == "ipcw_hajek"
    if p_skip == 0.0:  # no journey of known end converts without b: necessary, though the chain has converters skip it
        assert f.type == "necessary_for_conversion" and f.evidence["p_given_not_reached"] == 0.0
        assert f.evidence["journeys_converted_not_reached"] == 0 and f.evidence["n_not_reached"] >= 20
        plain = Snapshot.from_payload({k: v for k, v in scope.payload.items() if k != "state_estimates"})
        assert [g.type for g in run_detectors([plain], make_cfg()).findings if g.subject == "state:b"] == [
            "activation_driver"]  # the completed-only chain counts say otherwise
    else:
        assert f.type == "activation_driver" and f.evidence["journeys_converted_not_reached"] > 0
        assert f.evidence["lift"] == pytest.approx(f.evidence["p_given_reached"] / f.evidence["p_given_not_reached"])
