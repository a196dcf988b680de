"""Confidence of a finding: the probability that it replicates, so "High" means it holds up.

Default: the replication probability. A finding replicates when an independent
sample of the same size reports it again: its test passes the run's
Benjamini-Hochberg cut-off (|z| ≥ z_cut, the smallest |z| that passed in its
family) and its effect clears each of the detector's reporting floors (a
minimum lift, reach, exit rate, difference, sample size …). With a flat prior
the replicate's statistic is centred on the observed one with variance 2
(both samples are noisy), so each condition holds with probability
Φ(margin / √2), margin being the observed distance to the floor in standard
errors; the conditions are multiplied (treated as independent):

    confidence = Φ((|z| − z_cut) / √2) · Π_floors Φ(margin / √2)

High ≥ 0.9, Medium ≥ 0.6, else Low. benchmarks/replication.py measures it: it
splits the actors into two random halves and checks how often one half's High
findings reappear in the other (rates in benchmarks/README.md).

The paper's logistic family (section 5.6), σ(a·|z| + b·log(n / n_min) + c·|effect|),
is used instead when `detectors.confidence` sets a, b or c; `calibrate` refits
(a, b, c) by logistic regression on findings labelled true/false.
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
MEDIUM_AT = 0.6   # 0.6 ≤ confidence < 0.9 → "Medium", else "Low"
SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class ConfidenceModel:
    a: float = DEFAULT_A
    b: float = DEFAULT_B
    c: float = DEFAULT_C
    logistic: bool = False  # True when the config sets a, b or c: the paper's Eq. 11

    def replication(self, z: float, z_cut: float, margins: Sequence[float]) -> float:
        """Φ((|z| − z_cut)/√2) · Π Φ(margin/√2), rounded to 6 decimals (module docstring)."""
        p = _phi((min(abs(float(z)), 40.0) - z_cut) / SQRT2)
        for m in margins:
            p *= _phi(m / SQRT2)
        return round(p, 6)

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


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / SQRT2)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _sigmoid_vec(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))
