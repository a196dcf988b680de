"""engine.incidence's float steps reuse their buffers (in-place 1 − d/n, n (n − d), running sums) and FirstEntries
tells _second_term its weights at risk are whole numbers: the same floats, bit for bit, as the plain formula."""

from __future__ import annotations

import numpy as np
import pytest

from engine import incidence


def _plain(d_k: list[np.ndarray], n: np.ndarray, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """The module docstring's formula as written before the buffers were reused (pow for n³)."""
    d = d_k[0] + d_k[1]
    s_after = np.cumprod(1.0 - d / n)
    s_lag = np.concatenate(([1.0], s_after[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        first_coef = np.where(n > d, d / (n * (n - d)), 0.0)
    est, var = np.zeros(kept), np.zeros(kept)
    for k in range(kept):
        f_path = np.cumsum(s_lag * d_k[k] / n)
        gap = f_path[-1] - f_path
        second = s_lag ** 2 * d_k[k] * (n - d_k[k]) / n ** 3
        var[k] = max(float((gap ** 2 * first_coef).sum() + second.sum()
                           - 2.0 * (gap * (s_lag / n ** 2) * d_k[k]).sum()), 0.0)
        est[k] = f_path[-1]
    return est, var


def _counts(rng: np.random.Generator, m: int, top: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Event counts of two causes at m times and the journeys at risk (whole, falling from `top`)."""
    d0 = np.floor(rng.random(m) * rng.choice([1.0, 3.0, 40.0], m)) * (rng.random(m) < 0.7)
    d1 = np.floor(rng.random(m) * 5.0)
    d1[(d0 + d1) == 0] = 1.0
    gone = d0 + d1 + np.floor(rng.random(m) * 30.0)  # events and censored ones leave the risk set
    n = top - np.concatenate(([0.0], np.cumsum(gone)[:-1]))
    keep = n >= d0 + d1
    return [d0[keep], d1[keep]], n[keep]


@pytest.mark.parametrize("seed,m,top", [(0, 50, 400), (1, 5000, 150_000), (2, 5000, 260_000), (3, 20000, 2_000_000),
                                        (4, 1, 5)])
@pytest.mark.parametrize("kept", [1, 2])
def test_from_counts_equals_the_plain_formula_bit_for_bit(seed: int, m: int, top: int, kept: int) -> None:
    """Below, across and above the range where n³ is exact (208063), one cause and both."""
    d_k, n = _counts(np.random.default_rng(seed), m, top)
    want = _plain(d_k, n, kept)
    for whole in (False, True):
        got = incidence._from_counts(d_k, n, float(top), incidence.Z95, causes=kept, whole=whole)
        assert got.estimate.tobytes() == want[0].tobytes() and got.variance.tobytes() == want[1].tobytes(), whole


def test_second_term_for_whole_n_skips_the_check_only_below_the_exact_cube() -> None:
    """Whole n on both sides of 208063 (ties of n³ above it): with `whole` the pow values are kept there."""
    rng = np.random.default_rng(5)
    n = np.concatenate((np.arange(208001.0, 262144.0, 2.0), np.arange(1.0, 3000.0)))
    d = np.where(rng.random(len(n)) < 0.2, 0.0, np.floor(rng.random(len(n)) * np.minimum(n, 40.0)) + 1)
    s_lag2 = rng.random(len(n)) ** 2
    want = s_lag2 * d * (n - d) / n ** 3
    assert np.array_equal(incidence._second_term(d, s_lag2, n, whole=True), want)
    small = n < 3000
    assert np.array_equal(incidence._second_term(d[small], s_lag2[small], n[small], whole=True), want[small])


@pytest.mark.parametrize("seed", range(4))
def test_one_cause_each_variance_term_bit_for_bit(seed: int) -> None:
    """Each term of _one_cause's variance alone (the others zeroed), on floats spread over many magnitudes so that
    another evaluation order shows in the last bits; the estimate too."""
    rng = np.random.default_rng(seed)
    m = 3000
    d, n = np.floor(rng.random(m) * 9.0), np.floor(rng.uniform(10, 1e5, m))
    s_lag, coef, s_over_n2 = (np.exp(rng.normal(0, 6, m)) for _ in range(3))
    zero = np.zeros(m)
    f_path = np.cumsum(s_lag * d / n)
    gap = f_path[-1] - f_path
    first = float((gap ** 2 * coef).sum())
    third = float((gap * -s_over_n2 * d).sum())
    est, var = incidence._one_cause(d, s_lag, coef, zero, zero, n)
    assert (est, var) == (float(f_path[-1]), first)
    assert incidence._one_cause(d, s_lag, zero, zero, -s_over_n2, n)[1] == -2.0 * third
