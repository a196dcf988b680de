"""The statistical tests every detector shares, vectorised with numpy/scipy.

Detectors never roll their own tests: one implementation of each test keeps
p-values comparable across detectors so one Benjamini-Hochberg pass over all
of them (detectors.runner) is meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special

FISHER_BELOW = 5.0  # smallest expected cell count for which the z approximation is trusted


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test (two-sided): (z, p). z > 0 when x1/n1 > x2/n2.

    Degenerate cases (an empty group, or a pooled rate of 0 or 1) give z = 0, p = 1:
    there is no evidence of a difference, and the test still counts in BH.
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(var)
    return float(z), normal_two_sided(z)


def proportion_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, str]:
    """Two-proportion z-test, or Fisher's exact test when an expected cell is below 5.

    Returns (z, p, test name). For Fisher, z is the normal quantile matching p
    (signed like the difference), so confidence scoring has one scale.
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0, "none"
    pooled = (x1 + x2) / (n1 + n2)
    expected = min(pooled * n1, (1 - pooled) * n1, pooled * n2, (1 - pooled) * n2)
    if expected >= FISHER_BELOW:
        z, p = two_proportion_z(x1, n1, x2, n2)
        return z, p, "two_proportion_z"
    from scipy import (
        stats as sps,  # imported on first use: it costs ~0.5 s of start-up for every run
    )

    table = [[x1, n1 - x1], [x2, n2 - x2]]
    p = float(sps.fisher_exact(table).pvalue)
    sign = 1.0 if x1 / n1 >= x2 / n2 else -1.0
    return sign * z_from_p(p), min(1.0, p), "fisher_exact"


def normal_two_sided(z: float) -> float:
    """2·P(Z > |z|) via erfc (scipy.stats.norm.sf costs ~0.5 ms a call; this is ~100 ns)."""
    return float(math.erfc(abs(z) / math.sqrt(2.0)))


def normal_upper(z: float) -> float:
    """P(Z > z), one-sided."""
    return float(0.5 * math.erfc(z / math.sqrt(2.0)))


def z_from_p(p: float) -> float:
    """|z| of a two-sided p-value (capped so p = 0 stays finite)."""
    return float(-special.ndtri(max(p, 1e-300) / 2.0))


def chi2_homogeneity(table: np.ndarray) -> tuple[float, int, float]:
    """Chi-square test of homogeneity on a 2×K count table: (statistic, dof, p).

    Columns empty in both rows are dropped (they carry no information); with
    fewer than two columns left there is nothing to test (0, 0, 1.0).
    """
    table = np.asarray(table, dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) <= 0).any():
        return 0.0, 0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    stat = float(((table - expected) ** 2 / expected).sum())
    dof = (table.shape[0] - 1) * (table.shape[1] - 1)
    return stat, dof, chi2_sf(stat, dof)


def chi2_sf(stat: float, dof: int) -> float:
    """Upper tail of the chi-square distribution (the ufunc, without scipy.stats overhead)."""
    return float(special.chdtrc(dof, stat)) if dof > 0 else 1.0


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence in bits (base 2), so it lies in [0, 1]."""
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p = p / p.sum()
    q = q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        mask = a > 0
        return float((a[mask] * np.log2(a[mask] / m[mask])).sum())

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg q-values (step-up adjusted p-values), in input order.

    q_(i) = min_{j >= i} min(1, m · p_(j) / j) over the ascending order.
    Ties are ordered stably, so the result is deterministic.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.clip(ranked, 0.0, 1.0)
    return q


def r6(value: float) -> float:
    """Evidence numbers are floats rounded to 6 decimals (contracts.md)."""
    return round(float(value), 6)
