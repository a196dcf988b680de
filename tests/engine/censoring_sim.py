"""Simulated journeys with known truth for the censoring study (tests/engine/test_incidence.py, benchmarks/bench_censoring.py).

Outcome study: journeys start over [0, span] days; the data ends at `span`. A journey converts with
probability `p_convert` at a time drawn from its cause's duration law, else drops off; whatever has not
ended by the window W ends as "dropped" at W (the window-end rule). Truth: P(converted within W) =
p_convert · P(T_convert <= W). Three estimators of it:

* old: mature journeys only (start + W <= data end), the share that converted (Wald 95 % interval);
* naive: every journey whose outcome is known by the data end, the share that converted;
* aalen_johansen: engine.incidence, open journeys censored at data end − start.

Step study: steps out of one state, entered at uniform times; destinations with different delays
(a fast one, a slow one, and drop-off known only after the horizon H). Truth: the destination
probabilities. "resolved" counts steps entered at least H before the data end; "naive" counts every
step whose destination is known by the data end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.incidence import Z95, cumulative_incidence

WINDOW = 30.0


@dataclass(frozen=True)
class Pattern:
    name: str
    p_convert: float
    convert_mean: float      # days; conversion delay ~ exponential
    drop_mean: float         # days; drop-off delay ~ exponential
    growth: float = 0.0      # start density ∝ exp(growth · t / span): recent traffic heavier when > 0


PATTERNS = (
    Pattern("same_delays", 0.3, 5.0, 5.0),
    Pattern("slow_conversion", 0.3, 15.0, 3.0),      # outcome-dependent durations: naive biased down
    Pattern("fast_conversion", 0.3, 2.0, 12.0),      # the other way: naive biased up
    Pattern("growing_traffic", 0.3, 15.0, 3.0, 2.0),  # plus more recent starts
)


def truth(p: Pattern) -> float:
    return p.p_convert * (1.0 - np.exp(-WINDOW / p.convert_mean))


def _starts(p: Pattern, n: int, span: float, rng: np.random.Generator) -> np.ndarray:
    u = rng.random(n)
    if p.growth == 0:
        return u * span
    return span * np.log1p(u * np.expm1(p.growth)) / p.growth


def outcome_replicate(p: Pattern, n: int, span: float, rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    """(estimate, lower, upper) of each estimator on one simulated data set."""
    start = _starts(p, n, span, rng)
    conv = rng.random(n) < p.p_convert
    delay = np.where(conv, rng.exponential(p.convert_mean, n), rng.exponential(p.drop_mean, n))
    cause = np.where(conv & (delay <= WINDOW), 0, 1)
    end = np.minimum(delay, WINDOW)
    follow = span - start
    known = end <= follow
    mature = start + WINDOW <= span
    out = {"old": _wald(cause[mature] == 0), "naive": _wald(cause[known] == 0)}
    inc = cumulative_incidence(np.where(known, end, follow), np.where(known, cause, -1), 2, WINDOW)
    out["aalen_johansen"] = (float(inc.estimate[0]), float(inc.lower[0]), float(inc.upper[0]))
    out["n_old"], out["n_naive"], out["n_aj"] = (int(mature.sum()),) * 3, (int(known.sum()),) * 3, (n,) * 3
    return out


def _wald(hits: np.ndarray) -> tuple[float, float, float]:
    n = len(hits)
    if not n:
        return float("nan"), float("nan"), float("nan")
    f = float(hits.mean())
    half = Z95 * np.sqrt(f * (1 - f) / n)
    return f, f - half, f + half


STEP_TRUTH = np.array([0.3, 0.3, 0.4])  # fast next state, slow next state, dropped
STEP_DELAY = (0.2, 2.5)                # mean days to the fast / slow next state (< horizon in distribution)
HORIZON = 3.0                          # drop-off is known this long after entry


def step_replicate(n: int, span: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Destination shares by the resolved rule and by the naive 'destination already seen' rule."""
    entry = rng.random(n) * span
    dest = rng.choice(3, size=n, p=STEP_TRUTH)
    delay = np.where(dest == 0, rng.uniform(0, 2 * STEP_DELAY[0], n),
                     np.where(dest == 1, rng.uniform(0, 2 * STEP_DELAY[1], n), HORIZON))
    resolved = entry + HORIZON <= span
    seen = entry + delay <= span
    share = lambda mask: np.bincount(dest[mask], minlength=3) / max(int(mask.sum()), 1)
    return {"resolved": share(resolved), "naive": share(seen), "n_resolved": np.array([resolved.sum()])}


def outcome_study(p: Pattern, reps: int, n: int, span: float, seed: int) -> dict[str, dict[str, float]]:
    """Bias, RMSE and 95 % coverage of each estimator over `reps` data sets."""
    rng = np.random.default_rng(seed)
    target = truth(p)
    runs = [outcome_replicate(p, n, span, rng) for _ in range(reps)]
    out = {}
    for name in ("old", "naive", "aalen_johansen"):
        est = np.array([r[name][0] for r in runs])
        lo, hi = np.array([r[name][1] for r in runs]), np.array([r[name][2] for r in runs])
        out[name] = {"bias": float(np.nanmean(est) - target), "rmse": float(np.sqrt(np.nanmean((est - target) ** 2))),
                     "coverage": float(np.nanmean((lo <= target) & (target <= hi)))}
    out["n"] = {"old": float(np.mean([r["n_old"][0] for r in runs])),
                "naive": float(np.mean([r["n_naive"][0] for r in runs])), "aalen_johansen": float(n)}
    return out
