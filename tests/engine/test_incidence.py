"""engine.incidence (Aalen–Johansen) against lifelines, and the censoring simulation study (fast version)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine import incidence
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


def _assert_first_entries_match(end_t, ended, states, horizon):
    """FirstEntries (one ranking for every state) gives exactly first_entry's floats for cause 0."""
    shared = FirstEntries.of_times(end_t, ended, np.concatenate([first for _, first in states]), horizon)
    offset = 0
    for i, (rows, first) in enumerate(states):
        mine = np.arange(offset, offset + len(rows))
        offset += len(rows)
        want, got = first_entry(end_t, ended, rows, first, horizon), shared.of(rows, mine)
        for field in ("estimate", "variance", "lower", "upper", "events"):  # cause 0, "entered": what reach reports
            assert np.array_equal(getattr(got, field), getattr(want, field)[:1]), (i, field)
        assert got.n == want.n


@pytest.mark.parametrize("seed,scale", [(0, 1.0), (1, 1.0), (2, 0.001), (3, 1 / 3)])
def test_first_entries_shared_ranking_is_bit_identical_to_first_entry(seed, scale):
    """Ties and events past the horizon included: whole seconds (ranked without a sort) and fractional times
    (np.unique); states visited by nobody, by a few, by most and by every journey."""
    rng = np.random.default_rng(seed)
    n = 3000
    end_t = rng.integers(0, 60, n).astype(float) * scale
    ended = rng.random(n) < 0.6
    states = []
    for reach in (0.0, 0.01, 0.3, 1.0):
        rows = np.flatnonzero(rng.random(n) < reach)
        states.append((rows, np.floor(end_t[rows] / scale * rng.random(len(rows))) * scale))
    _assert_first_entries_match(end_t, ended, states, 40.0 * scale)


@pytest.mark.parametrize("horizon", [0.0, 7.0, 7.5, 1e9])
def test_first_entries_visits_at_end_times_and_horizon_on_a_grid_point(horizon):
    """Visits on the very times journeys end (the same grid points carry both causes), a state whose every
    visit is past the horizon, a state whose visitors are all the ended journeys of some times (those times
    drop out of its event times), and horizons before, on, between and after the grid points."""
    rng = np.random.default_rng(7)
    n = 800
    end_t = rng.integers(0, 20, n).astype(float)
    ended = rng.random(n) < 0.5
    on_ends = np.flatnonzero(rng.random(n) < 0.4)
    late = np.flatnonzero(end_t > 10)
    all_ended_at_3 = np.flatnonzero(ended & (end_t == 3.0))
    states = [(on_ends, end_t[on_ends]), (late, end_t[late]), (all_ended_at_3, np.zeros(len(all_ended_at_3))),
              (np.arange(n), np.zeros(n))]
    _assert_first_entries_match(end_t, ended, states, horizon)


def test_first_entries_above_the_exact_cube_range():
    """More than 208063 journeys at risk: n³ is no longer exact and pow's rounding has to be kept."""
    rng = np.random.default_rng(11)
    n = 240_000
    end_t = rng.integers(0, 5000, n).astype(float)
    ended = rng.random(n) < 0.7
    rows = np.flatnonzero(rng.random(n) < 0.5)
    _assert_first_entries_match(end_t, ended, [(rows, np.floor(end_t[rows] * rng.random(len(rows))))], 4000.0)


def test_second_term_equals_the_pow_formula_bit_for_bit():
    """The variance's second term takes n·n·n only where it is pow's value: whole n up to 208063; exact ties
    of n³ above it (odd n in [208064, 262144)), fractional n and events of zero are where a product differs."""
    rng = np.random.default_rng(3)
    n = np.concatenate((np.arange(1.0, 3000.0), np.arange(208001.0, 262144.0, 2.0), rng.uniform(1, 5e5, 5000),
                        np.floor(rng.uniform(1, 2e6, 5000))))
    d = np.where(rng.random(len(n)) < 0.2, 0.0, np.floor(rng.random(len(n)) * np.minimum(n, 40.0)) + 1)
    s_lag2 = rng.random(len(n)) ** 2
    want = s_lag2 * d * (n - d) / n ** 3
    assert np.array_equal(incidence._second_term(d, s_lag2, n), want)
    assert not np.array_equal(s_lag2 * d * (n - d) / (n * n * n), want)  # the ties are in the data


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
