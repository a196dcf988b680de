"""Detection power of a two-proportion comparison: the smallest change the data could reveal.

For a baseline probability p1 seen over n1 trials and a comparison group of n2
trials, the minimum detectable effect (MDE) at two-sided level α and power
1 − β is the smallest |Δ| with

    z_{1−α/2} · sqrt(p̄ (1 − p̄) (1/n1 + 1/n2)) + z_{1−β} · sqrt(p1 (1 − p1)/n1 + p2 (1 − p2)/n2) ≤ |Δ|,

p2 = p1 + Δ and p̄ = (n1 p1 + n2 p2)/(n1 + n2): the pooled z-test
(detectors.stats.two_proportion_z) rejects with probability ≥ 1 − β when the
true change is Δ (normal approximation; the tiny opposite-tail mass is
ignored, as usual). The change can go either way, so the MDE reported is the
larger of the increase and the decrease (a change of at least that size in
either direction is detected with the stated power); a direction that cannot
reach the required power inside [0, 1] gives None there. Solved by
vectorised bisection (the left side minus |Δ| is monotone enough in |Δ| for
these sample sizes; 50 halvings reach 1e-15).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import special

POWER = 0.80


def _shortfall(p1: np.ndarray, n1: np.ndarray, n2: np.ndarray, delta: np.ndarray, za: float, zb: float) -> np.ndarray:
    p2 = p1 + delta
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    need = za * np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2)) + zb * np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    return need - np.abs(delta)


def _one_side(p1: np.ndarray, n1: np.ndarray, n2: np.ndarray, sign: float, za: float, zb: float) -> np.ndarray:
    room = (1.0 - p1) if sign > 0 else p1  # how far p2 can move this way
    lo, hi = np.zeros_like(p1), room.copy()
    reachable = _shortfall(p1, n1, n2, sign * hi, za, zb) <= 0
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        ok = _shortfall(p1, n1, n2, sign * mid, za, zb) <= 0
        hi, lo = np.where(ok, mid, hi), np.where(ok, lo, mid)
    return np.where(reachable, hi, np.nan)


def minimum_detectable_change(p1: ArrayLike, n1: ArrayLike, n2: ArrayLike,
                              alpha: float, power: float = POWER) -> np.ndarray:
    """MDE |Δ| per element (NaN where n is 0 or no change inside [0, 1] reaches the power)."""
    p1, n1, n2 = (np.atleast_1d(np.asarray(x, dtype=float)) for x in (p1, n1, n2))
    p1, n1, n2 = np.broadcast_arrays(np.clip(p1, 0.0, 1.0), n1, n2)
    za, zb = float(special.ndtri(1 - alpha / 2)), float(special.ndtri(power))
    valid = (n1 > 0) & (n2 > 0)
    safe1, safe2 = np.where(valid, n1, 1.0), np.where(valid, n2, 1.0)
    up = _one_side(p1, safe1, safe2, 1.0, za, zb)
    down = _one_side(p1, safe1, safe2, -1.0, za, zb)
    both = np.fmax(up, down)  # a side that cannot reach the power (NaN) leaves the other's value
    return np.where(valid, both, np.nan)


def power_of(p1: float, n1: float, p2: float, n2: float, alpha: float) -> float:
    """Power of the pooled two-proportion z-test to detect the difference p2 − p1 at these sample sizes."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    za = float(special.ndtri(1 - alpha / 2))
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    null_sd = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    alt_sd = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    if alt_sd <= 0:
        return 1.0 if p1 != p2 else 0.0
    return float(special.ndtr((abs(p2 - p1) - za * null_sd) / alt_sd))


def journeys_needed(p1: float, delta: float, alpha: float, power: float = POWER) -> int | None:
    """Trials per group for the pooled z-test to detect a change of `delta` from `p1` (either way) with `power`.

    Equal groups: n = (z_{1−α/2} √(2 p̄ q̄) + z_{1−β} √(p1 q1 + p2 q2))² / Δ², p̄ = (p1 + p2)/2; the larger of
    the increase and the decrease that fit in [0, 1]; None when neither does.
    """
    za, zb = float(special.ndtri(1 - alpha / 2)), float(special.ndtri(power))
    needs = []
    for p2 in (p1 + delta, p1 - delta):
        if 0.0 <= p2 <= 1.0 and delta > 0:
            pooled = (p1 + p2) / 2
            root = za * np.sqrt(2 * pooled * (1 - pooled)) + zb * np.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
            needs.append(int(np.ceil((root / delta) ** 2)))
    return max(needs) if needs else None
