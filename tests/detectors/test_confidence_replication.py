"""Confidence is the probability of replication: the BH cut-off and every reporting floor must hold again."""

from __future__ import annotations

import math

import pytest
from detector_builders import make_cfg, snap

from detectors.confidence import ConfidenceModel, label
from detectors.defaults import ActivationDriverConfig
from detectors.margins import margins
from detectors.runner import run_detectors
from fixtures.paper_chain import FIGURE2
from ontology.model import Finding


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def test_replication_probability_formula():
    model = ConfidenceModel()
    assert model.replication(5.0, 3.0, [2.0, 4.0]) == pytest.approx(
        round(_phi(2 / math.sqrt(2)) * _phi(2 / math.sqrt(2)) * _phi(4 / math.sqrt(2)), 6), abs=1e-6)
    assert model.replication(3.0, 3.0, []) == 0.5  # exactly at the cut-off: a coin flip
    assert label(model.replication(40.0, 3.0, [])) == "High"
    assert label(model.replication(40.0, 3.0, [0.1])) == "Low"  # huge z, effect just above a floor


def _driver(lift_reached: float, n_reached: int = 4000, n: int = 10000) -> Finding:
    p0 = 0.1
    return Finding(type="activation_driver", detector="activation_driver@1", journey="j", subject="state:s",
                   predicate="is_activation_driver_for", object="outcome:converted", snapshot_id="x", n=n,
                   effect=lift_reached - 1, p_value=1e-30, q_value=1e-30, confidence=0.0, confidence_label="Low",
                   evidence={"journey": "j", "reach": n_reached / n, "n_reached": n_reached,
                             "p_given_reached": p0 * lift_reached, "p_given_not_reached": p0},
                   window=("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z"), reach=n_reached / n)


def test_a_lift_just_above_its_floor_has_a_small_margin():
    cfg = ActivationDriverConfig()
    near, far = margins(_driver(1.52), cfg, 100), margins(_driver(3.0), cfg, 100)
    assert len(near) == len(far) == 3  # reach, n_reached, lift
    assert near[2] < 1.0 < far[2]
    se = math.sqrt((1 - 0.152) / (0.152 * 4000) + 0.9 / (0.1 * 6000))
    assert near[2] == pytest.approx((math.log(1.52) - math.log(1.5)) / se, rel=1e-9)


def test_logistic_model_used_only_when_configured():
    snapshot = snap(FIGURE2, journeys=3000)
    default = run_detectors([snapshot], make_cfg())
    paper = run_detectors([snapshot], make_cfg({"confidence": {"a": 0.6}}))
    d = {f.subject: f.confidence for f in default.findings}
    p = {f.subject: f.confidence for f in paper.findings}
    assert d.keys() == p.keys() and d != p
    big = run_detectors([snap(FIGURE2, journeys=100_000)], make_cfg())
    assert all(f.confidence_label == "High" for f in big.findings if f.type == "activation_driver")
