"""Confidence of a finding: the paper's logistic family (section 5.6) with shipped defaults.

confidence = σ(a·|z| + b·log(n / n_min) + c·|effect|)

The paper fixes no coefficients. Defaults are chosen so that a finding at the
edge of detectability (|z| ≈ 2, n = n_min, no effect) sits near 0.77 (Medium),
a clear finding (|z| ≥ 4 or a large sample) is High, and a weak one
(|z| < 1, n near n_min) is Low. `calibrate` refits (a, b, c) by logistic
regression on findings labelled true/false once a deployment has them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_A = 0.6   # per unit of |z|
DEFAULT_B = 0.3   # per unit of log(n / n_min)
DEFAULT_C = 1.0   # per unit of |effect| (effect clipped to [0, 1] first)
HIGH_AT = 0.9     # confidence ≥ 0.9 → "High"
MEDIUM_AT = 0.7   # 0.7 ≤ confidence < 0.9 → "Medium", else "Low"


@dataclass(frozen=True)
class ConfidenceModel:
    a: float = DEFAULT_A
    b: float = DEFAULT_B
    c: float = DEFAULT_C

    def score(self, z: float, n: int, n_min: int, effect: float) -> float:
        """σ(a·|z| + b·log(n/n_min) + c·|effect|), rounded to 6 decimals."""
        return round(_sigmoid(self.linear(z, n, n_min, effect)), 6)

    def linear(self, z: float, n: int, n_min: int, effect: float) -> float:
        x = features(z, n, n_min, effect)
        return self.a * x[0] + self.b * x[1] + self.c * x[2]


def features(z: float, n: int, n_min: int, effect: float) -> tuple[float, float, float]:
    """(|z|, log(n/n_min), |effect| clipped to [0, 1]) — the inputs of Eq. 11."""
    z_abs = min(abs(float(z)), 40.0)
    log_n = math.log(max(n, 1) / max(n_min, 1))
    return z_abs, log_n, min(1.0, abs(float(effect)))


def label(confidence: float) -> str:
    """The qualitative label shown to users."""
    if confidence >= HIGH_AT:
        return "High"
    if confidence >= MEDIUM_AT:
        return "Medium"
    return "Low"


def calibrate(labelled: Sequence[tuple[tuple[float, float, float], bool]], l2: float = 1e-3) -> tuple[float, float, float]:
    """Fit (a, b, c) by maximum-likelihood logistic regression without intercept.

    `labelled` holds (features(z, n, n_min, effect), is_true_finding) pairs. A
    small L2 penalty keeps the fit finite when the labels are separable.
    """
    if not labelled:
        raise ValueError("calibrate needs at least one labelled finding")
    x = np.array([row for row, _ in labelled], dtype=float)
    y = np.array([1.0 if ok else 0.0 for _, ok in labelled])

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        s = x @ w
        nll = np.sum(np.logaddexp(0.0, s) - y * s) + l2 * float(w @ w)
        grad = x.T @ (_sigmoid_vec(s) - y) + 2 * l2 * w
        return float(nll), grad

    from scipy import (
        optimize,  # only calibration fits need it; not imported by every run
    )

    fit = optimize.minimize(loss, np.array([DEFAULT_A, DEFAULT_B, DEFAULT_C]), jac=True, method="L-BFGS-B")
    a, b, c = (round(float(v), 6) for v in fit.x)
    return a, b, c


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _sigmoid_vec(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))
