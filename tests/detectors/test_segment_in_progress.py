"""Segment divergence from journeys still in progress (issue 14): found before a window has passed, none on null.

Stream: the demo chain, 2,000 sign-ups over 36 days, a 30-day window and a 3-day inactivity outcome, so
about 83 % of journeys are censored. Android users go feature_used -> help_center far more often (the
demo's planted divergence). The completed-only rule sees the first 6 days of sign-ups; the estimates
(each value's IPCW resolved steps and first-entry incidence against the stratified rest) see them all.
The completed-only detector is run on the same snapshots with the segment estimates taken out.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import segment_estimates as est
from detectors.runner import run_detectors
from detectors.synthetic import chain_payload
from detectors.view import SnapView
from engine.snapshot import Snapshot
from engine.snapshot_estimates import reach_estimate
from fixtures.generate_demo import DemoParams
from tests.detectors.release_streams import release_stream

ANDROID = "segment:platform=android"
IN_PROGRESS = ("reach_estimates", "resolved_shares", "outcome_probabilities")


def _completed_only(snaps: list) -> list:
    """The same snapshots without the segment estimates: the detector falls back to completed journeys."""
    out = []
    for s in snaps:
        payload = {k: v for k, v in s.payload.items() if s.scope != "segment" or k not in IN_PROGRESS}
        out.append(Snapshot.from_payload(payload))
    return out


@pytest.fixture(scope="module", params=["planted", "null"])
def young(request, tmp_path_factory):
    kw = {"n_users": 2000, "days": 36, "release_day": 30, "seed": 7}
    params = DemoParams.null(**kw) if request.param == "null" else DemoParams(**kw)
    snaps, cfg = release_stream(params, tmp_path_factory.mktemp(request.param), 6)
    return request.param, snaps, cfg


def _segment(snaps: list, cfg) -> list:
    return [f for f in run_detectors(snaps, cfg).findings if f.type == "segment_divergence"]


def test_stream_is_mostly_censored(young):
    _, snaps, _ = young
    base = next(s for s in snaps if s.scope == "all").payload
    assert base["censored"] > 0.75 * base["journeys"]


def test_planted_divergence_found_from_estimates_before_the_completed_rule_can(young):
    kind, snaps, cfg = young
    found = [f for f in _segment(snaps, cfg) if f.predicate == "diverges_from"]
    if kind == "null":
        assert found == []
        return
    assert [f.subject for f in found] == [ANDROID]
    ev = found[0].evidence
    assert ev["estimator"] == est.MOVES_ESTIMATOR and ev["test"] == est.MOVES_TEST
    assert ev["state"] == "feature_used" and ev["q_value"] <= 0.05
    assert ev["journeys_segment"] > 4 * ev["completed_segment"]  # journeys in progress count
    assert ev["n_segment"] > 0 and ev["n_rest"] > ev["n_segment"]
    old = [f for f in _segment(_completed_only(snaps), cfg) if f.predicate == "diverges_from"]
    assert old == []  # the completed journeys alone cannot tell yet


def test_null_stream_gives_no_segment_finding(young):
    kind, snaps, cfg = young
    if kind == "null":
        assert _segment(snaps, cfg) == []


def test_reach_findings_name_their_estimator_and_effective_n(young):
    kind, snaps, cfg = young
    for f in _segment(snaps, cfg):
        if f.predicate == "diverges_from":
            continue
        ev = f.evidence
        assert ev["estimator"] in (est.REACH_ESTIMATOR, est.OUTCOME_ESTIMATOR)
        assert ev["n_segment"] >= 50 and ev["n_rest"] >= 50 and f.n == ev["n_segment"] + ev["n_rest"]
        assert ev["difference"] == pytest.approx(ev["reach_segment"] - ev["reach_rest"], abs=2e-6)


def _value(key_value: str, reached: int, n: int, censored: int = 0) -> SnapView:
    """A segment snapshot with nothing censored whose first-entry estimate of state `x` comes from the engine."""
    payload = chain_payload({"sign_up": {"x": 0.5, "converted": 0.5}, "x": {"converted": 1.0}}, journeys=n,
                            start="sign_up", scope="segment", segment=("k", key_value))
    end = np.ones(n)
    payload.update(journeys=n, censored=censored,
                   reach_estimates={"x": reach_estimate(end, np.ones(n, bool), False, np.arange(reached),
                                                        np.full(reached, 0.5), 10.0)})
    return SnapView(Snapshot.from_payload(payload))


def test_with_nothing_censored_the_stratified_rest_is_the_count_ratio():
    """The rest's estimate Σ (N_j/N) F_j is x_rest / n_rest and its effective n is n_rest when nothing is censored."""
    others = [_value("b", 30, 120), _value("c", 90, 200), _value("d", 5, 80)]
    rest = est.side(others, "state:x")
    assert rest.estimate == pytest.approx(125 / 400, abs=1e-6)
    assert rest.n_eff == pytest.approx(400, rel=1e-3) and rest.journeys == 400
    seg = est.side([_value("a", 60, 100)], "state:x")
    assert seg.estimate == pytest.approx(0.6) and seg.n_eff == pytest.approx(100, rel=1e-3)
    # and the detector keeps the completed-only counts: no journey of the all-data scope is censored
    base = SnapView(Snapshot.from_payload({**chain_payload({"sign_up": {"converted": 1.0}}, journeys=500, start="sign_up"),
                                           "censored": 0}))
    assert not est.uses_estimates(base, [_value("a", 60, 100), *others])


def test_rao_scott_size_is_the_count_for_binomial_shares():
    p = np.array([0.2, 0.3, 0.5])
    n = 400
    var = p * (1 - p) / n
    assert est.rao_scott_n(p, var, 123.0) == pytest.approx(n)
    assert est.rao_scott_n(p, 2 * var, 123.0) == pytest.approx(n / 2)  # a design effect of 2 halves it
    assert est.rao_scott_n(np.array([1.0, 0.0]), np.zeros(2), 123.0) == 123.0
