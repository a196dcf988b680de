"""engine.incidence (Aalen–Johansen) against lifelines, and the censoring simulation study (fast version)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.incidence import FirstEntries, cumulative_incidence, first_entry, two_sample_z
from tests.engine import censoring_sim as sim


def test_matches_lifelines_estimate_variance_and_interval():
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(1)
    n = 400
    t, cause, c = rng.exponential(10, n), rng.integers(0, 3, n), rng.uniform(0, 30, n)
    obs, ev = np.minimum(t, c), np.where(t <= c, cause, -1)
    ours = cumulative_incidence(obs, ev, 3, 15.0)
    for k in range(3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            aj = lifelines.AalenJohansenFitter(calculate_variance=True).fit(obs, ev + 1, event_of_interest=k + 1)
        at = aj.cumulative_density_.index[aj.cumulative_density_.index <= 15.0][-1]
        assert ours.estimate[k] == pytest.approx(float(aj.cumulative_density_.loc[at].iloc[0]), abs=1e-12)
        assert ours.variance[k] == pytest.approx(float(aj.variance_.loc[at]), rel=1e-9)
        assert sorted([ours.lower[k], ours.upper[k]]) == pytest.approx(sorted(aj.confidence_interval_.loc[at]), abs=1e-9)


def test_no_censoring_gives_the_plain_shares_and_binomial_variance():
    cause = np.array([0] * 30 + [1] * 50 + [-1] * 0)
    times = np.arange(80, dtype=float)
    inc = cumulative_incidence(times, cause, 2, 100.0)
    assert inc.estimate == pytest.approx([30 / 80, 50 / 80])
    assert inc.variance[0] == pytest.approx(30 / 80 * 50 / 80 / 80)


def test_grouped_weights_equal_repeated_rows():
    t = np.array([1.0, 2.0, 2.0, 3.0, 5.0])
    c = np.array([0, 1, -1, 0, -1])
    w = np.array([3, 2, 4, 1, 5])
    grouped = cumulative_incidence(t, c, 2, 4.0, w)
    flat = cumulative_incidence(np.repeat(t, w), np.repeat(c, w), 2, 4.0)
    assert grouped.estimate == pytest.approx(flat.estimate) and grouped.variance == pytest.approx(flat.variance)


def test_single_cause_is_one_minus_kaplan_meier():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    c = np.array([0, -1, 0, -1])
    inc = cumulative_incidence(t, c, 1, 10.0)
    assert inc.estimate[0] == pytest.approx(1 - (3 / 4) * (1 / 2))


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 1.0), (2, 0.001), (3, 1 / 3)])
def test_first_entries_shared_ranking_is_bit_identical_to_first_entry(seed, scale):
    """The shared ranking used for every state of a scope gives exactly first_entry's floats for cause 0, ties
    and events past the horizon included: whole seconds (ranked without a sort) and fractional times (np.unique)."""
    rng = np.random.default_rng(seed)
    n = 3000
    end_t = rng.integers(0, 60, n).astype(float) * scale
    ended = rng.random(n) < 0.6
    reaches = (0.0, 0.01, 0.3, 1.0)
    states = []
    for reach in reaches:
        rows = np.flatnonzero(rng.random(n) < reach)
        states.append((rows, np.floor(end_t[rows] / scale * rng.random(len(rows))) * scale))
    shared = FirstEntries.of_times(end_t, ended, np.concatenate([first for _, first in states]), 40.0 * scale)
    offset = 0
    for reach, (rows, first) in zip(reaches, states):
        mine = np.arange(offset, offset + len(rows))
        offset += len(rows)
        want, got = first_entry(end_t, ended, rows, first, 40.0 * scale), shared.of(rows, mine)
        for field in ("estimate", "variance", "lower", "upper", "events"):  # cause 0, "entered": what reach reports
            assert np.array_equal(getattr(got, field), getattr(want, field)[:1]), (reach, field)
        assert got.n == want.n


def test_two_sample_z_sign_and_degenerate_case():
    z, p = two_sample_z(0.2, 0.0004, 0.3, 0.0004)
    assert z > 0 and p < 0.001
    assert two_sample_z(0.2, 0.0, 0.2, 0.0) == (0.0, 1.0)


@pytest.mark.parametrize("pattern", sim.PATTERNS, ids=lambda p: p.name)
def test_simulation_aalen_johansen_unbiased_and_covering(pattern):
    result = sim.outcome_study(pattern, reps=200, n=1500, span=60.0, seed=14)
    aj, old, naive = result["aalen_johansen"], result["old"], result["naive"]
    assert abs(aj["bias"]) < 0.006
    assert 0.91 <= aj["coverage"] <= 0.99
    assert abs(old["bias"]) < 0.008 and aj["rmse"] < old["rmse"]  # the old rule is unbiased but uses fewer journeys
    if pattern.convert_mean != pattern.drop_mean:
        assert abs(naive["bias"]) > 0.02  # "completed only" is biased when durations depend on the outcome


def test_simulation_resolved_steps_unbiased_naive_biased():
    rng = np.random.default_rng(3)
    reps = [sim.step_replicate(4000, 20.0, rng) for _ in range(200)]
    resolved = np.mean([r["resolved"] for r in reps], axis=0)
    naive = np.mean([r["naive"] for r in reps], axis=0)
    assert resolved == pytest.approx(sim.STEP_TRUTH, abs=0.004)
    assert naive[2] < sim.STEP_TRUTH[2] - 0.01  # drop-offs are seen last, so the naive rule undercounts them
