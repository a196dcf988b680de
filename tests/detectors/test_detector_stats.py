"""Statistical tests against hand-computed values and scipy reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from detectors import confidence, stats


@pytest.mark.parametrize("p,expected", [
    ([0.01, 0.04, 0.03, 0.005], [0.02, 0.04, 0.04, 0.02]),
    ([0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205],
     [0.008, 0.032, 0.0672, 0.0672, 0.0672, 0.08, 0.084571, 0.205]),
    ([0.5], [0.5]),
    ([0.9, 0.9, 0.9], [0.9, 0.9, 0.9]),
], ids=["four", "eight-step-up", "single", "ties"])
def test_bh_matches_hand_computation(p, expected):
    assert stats.benjamini_hochberg(p) == pytest.approx(expected, abs=1e-6)


def test_bh_matches_scipy_on_random_pvalues():
    p = np.random.default_rng(3).random(200) ** 3
    assert stats.benjamini_hochberg(p) == pytest.approx(sps.false_discovery_control(p, method="bh"))


@pytest.mark.parametrize("x1,n1,x2,n2", [(45, 100, 30, 100), (300, 2000, 260, 2100), (12, 80, 30, 90), (5, 50, 5, 50)],
                         ids=["moderate", "large", "negative", "equal"])
def test_two_proportion_z_matches_scipy_chi2(x1, n1, x2, n2):
    z, p = stats.two_proportion_z(x1, n1, x2, n2)
    chi2, p_ref, _, _ = sps.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)
    assert z * z == pytest.approx(chi2)
    assert p == pytest.approx(p_ref)
    assert (z > 0) == (x1 / n1 > x2 / n2)


def test_small_counts_use_fisher():
    z, p, test = stats.proportion_test(3, 20, 0, 25)
    assert test == "fisher_exact"
    assert p == pytest.approx(sps.fisher_exact([[3, 17], [0, 25]]).pvalue)
    assert z > 0


@pytest.mark.parametrize("table", [
    [[10, 20, 30], [15, 15, 30]],
    [[100, 5, 0, 40], [80, 25, 0, 60]],
    [[1, 2], [3, 4]],
], ids=["3cols", "zero-column", "2x2"])
def test_chi2_homogeneity_matches_scipy(table):
    stat, dof, p = stats.chi2_homogeneity(np.array(table))
    arr = np.array(table)
    ref = sps.chi2_contingency(arr[:, arr.sum(axis=0) > 0], correction=False)
    assert stat == pytest.approx(ref.statistic)
    assert dof == ref.dof
    assert p == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("p,q", [([0.5, 0.5], [0.9, 0.1]), ([1, 0, 0], [0, 0, 1]), ([3, 1, 1], [3, 1, 1])],
                         ids=["skewed", "disjoint", "equal"])
def test_jensen_shannon_bits_matches_scipy(p, q):
    assert stats.jensen_shannon(np.array(p), np.array(q)) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)


@pytest.mark.parametrize("z,n,effect,label", [(6.0, 2000, 0.5, "High"), (2.0, 100, 0.0, "Medium"), (0.5, 100, 0.0, "Low")],
                         ids=["clear", "edge", "weak"])
def test_confidence_labels(z, n, effect, label):
    conf = confidence.ConfidenceModel().score(z, n, 100, effect)
    assert 0.0 <= conf <= 1.0
    assert confidence.label(conf) == label


def test_calibrate_recovers_coefficients():
    rng = np.random.default_rng(11)
    true = np.array([0.9, 0.2, -1.5])
    x = np.column_stack([rng.uniform(0, 5, 4000), rng.uniform(-1, 3, 4000), rng.uniform(0, 1, 4000)])
    y = rng.random(4000) < 1 / (1 + np.exp(-(x @ true)))
    a, b, c = confidence.calibrate([(tuple(row), bool(label)) for row, label in zip(x, y)])
    assert (a, b, c) == pytest.approx(tuple(true), abs=0.25)


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60))
def test_bh_properties(p):
    q = stats.benjamini_hochberg(p)
    p = np.asarray(p)
    assert (q >= p - 1e-12).all() and (q <= 1.0).all()
    order = np.argsort(p, kind="stable")
    assert (np.diff(q[order]) >= -1e-12).all()  # monotone in p
