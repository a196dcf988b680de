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


# ------------------------------------------------------------------------------------------
# Journey study: reach, path shares and median duration (engine.snapshot_estimates' estimators)
# ------------------------------------------------------------------------------------------
# A journey visits state B with probability Q_B, at a uniform moment before its last activity; it converts
# with probability P_CONV_B (B visited) or p_convert − 0.1 (not), after a delay drawn from its outcome's law.
# A conversion later than the window W is a drop-off at W; a drop-off's end is known H after its last activity
# (the inactivity rule), or at W. Duration D = the last activity (conversion time for a conversion), as the
# snapshot's durations. Truth: reach(B) = Q_B; the four (B?, outcome) shares and the median of D in closed form.
Q_B, LIFT_B, H_INACTIVE = 0.4, 0.3, 3.0
QUANTITIES = ("reach_B", "path_B_converted", "path_B_dropped", "path_noB_converted", "path_noB_dropped", "median_D")


def _p_conv(p: Pattern) -> tuple[float, float]:
    """P(convert eventually | B visited), P(convert eventually | not)."""
    return p.p_convert + LIFT_B * (1 - Q_B), p.p_convert - LIFT_B * Q_B


def journey_truth(p: Pattern) -> np.ndarray:
    pb, pn = _p_conv(p)
    within = 1.0 - np.exp(-WINDOW / p.convert_mean)
    shares = [Q_B * pb * within, Q_B * (1 - pb * within), (1 - Q_B) * pn * within, (1 - Q_B) * (1 - pn * within)]
    conv = Q_B * pb + (1 - Q_B) * pn

    def cdf(t: float) -> float:  # P(D <= t) for t < W
        return conv * (1 - np.exp(-t / p.convert_mean)) + (1 - conv) * (1 - np.exp(-t / p.drop_mean))

    lo, hi = 0.0, WINDOW
    if cdf(WINDOW * (1 - 1e-12)) < 0.5:
        return np.array([Q_B, *shares, WINDOW])
    for _ in range(200):  # bisection to machine precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < 0.5 else (lo, mid)
    return np.array([Q_B, *shares, (lo + hi) / 2])


def journey_replicate(p: Pattern, n: int, span: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """(estimate, lower, upper) per quantity for the new estimators ('new'), and the estimates of the old rule
    (mature journeys only) and the naive one (journeys ended by the data end), with Wald intervals for shares."""
    from engine import incidence, ipcw

    start = _starts(p, n, span, rng)
    visit_b = rng.random(n) < Q_B
    pb, pn = _p_conv(p)
    conv = rng.random(n) < np.where(visit_b, pb, pn)
    delay = np.where(conv, rng.exponential(p.convert_mean, n), rng.exponential(p.drop_mean, n))
    converted = conv & (delay <= WINDOW)
    last = np.minimum(delay, WINDOW)
    known_at = np.where(converted, last, np.minimum(last + H_INACTIVE, WINDOW))
    t_b = rng.random(n) * last
    follow = span - start
    ended = known_at <= follow
    key = np.where(visit_b, 0, 2) + np.where(converted, 0, 1)
    # new: reach by first entry, shares and median by IPCW
    seen_b = visit_b & (t_b <= follow)
    reach = incidence.first_entry(np.where(ended, known_at, follow), ended, np.flatnonzero(seen_b), t_b[seen_b], WINDOW)
    w = ipcw.weights(known_at, ended, follow)
    sh = ipcw.shares(key[ended], w[ended], 4)
    med = ipcw.median(last, w)
    new = np.array([[reach.estimate[0], reach.lower[0], reach.upper[0]],
                    *np.column_stack([sh.estimate, sh.lower, sh.upper]),
                    [med.estimate, med.lower, np.nan if med.upper is None else med.upper]], dtype=float)
    mature = start + WINDOW <= span
    return {"new": new, "old": _plain(visit_b, key, last, mature), "naive": _plain(visit_b, key, last, ended),
            "n": np.array([n, mature.sum(), ended.sum()], dtype=float)}


def _plain(visit_b: np.ndarray, key: np.ndarray, last: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Share / median over the kept journeys only, Wald intervals for the shares (none for the median)."""
    rows = [_wald(visit_b[keep])] + [_wald(key[keep] == k) for k in range(4)]
    med = float(np.median(last[keep])) if keep.any() else np.nan
    return np.array([*rows, (med, np.nan, np.nan)], dtype=float)


def journey_study(p: Pattern, reps: int, n: int, span: float, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per estimator: bias, its standard error (sd / √reps), RMSE and 95 % coverage per quantity; mean journeys used."""
    rng = np.random.default_rng(seed)
    truth_ = journey_truth(p)
    runs = [journey_replicate(p, n, span, rng) for _ in range(reps)]
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in ("new", "old", "naive"):
        res = np.stack([r[name] for r in runs])  # reps × quantity × (est, lo, hi)
        est, lo, hi = res[..., 0], res[..., 1], res[..., 2]
        inside = (lo <= truth_) & (truth_ <= np.where(np.isnan(hi), np.inf, hi))
        out[name] = {"bias": np.nanmean(est, axis=0) - truth_, "bias_se": np.nanstd(est, axis=0, ddof=1) / np.sqrt(reps),
                     "rmse": np.sqrt(np.nanmean((est - truth_) ** 2, axis=0)),
                     "coverage": np.where(np.isnan(lo).all(axis=0), np.nan, inside.mean(axis=0))}
    out["n"] = {"used": np.mean([r["n"] for r in runs], axis=0)}
    return out


# ------------------------------------------------------------------------------------------
# Step-share study: the destination depends on how far into the journey the step happens
# ------------------------------------------------------------------------------------------
# Each journey makes 1 + Poisson(2) steps out of state a, at gaps ~ Exp(3 d) from its start (those past W are
# not made); a step goes to b with probability 0.6 in the journey's first 2 days, 0.2 later, else to c. A step
# is resolved when the journey is complete (c ≥ W) or H passed since it was entered (s + H ≤ c).
def step_journeys(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(journey index, entry time since start, went to b) of every step of n journeys."""
    k = 1 + rng.poisson(2.0, n)
    row = np.repeat(np.arange(n), k)
    first = np.cumsum(k) - k
    gaps = rng.exponential(3.0, len(row))
    s = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], k)
    keep = s < WINDOW
    row, s = row[keep], s[keep]
    return row, s, rng.random(len(s)) < np.where(s < 2.0, 0.6, 0.2)


def step_share_truth(seed: int = 99, n: int = 400_000) -> tuple[float, float]:
    """The pooled share of steps a → b over fully observed journeys (large sample) and its Monte-Carlo SE."""
    row, _, to_b = step_journeys(n, np.random.default_rng(seed))
    per_b, per_n = np.bincount(row, weights=to_b, minlength=n), np.bincount(row, minlength=n)
    share = per_b.sum() / per_n.sum()
    se = np.sqrt(np.sum((per_b - share * per_n) ** 2)) / per_n.sum()  # ratio estimator, clustered by journey
    return float(share), float(se)


def step_share_replicate(n: int, span: float, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """(share, se) of a → b: IPCW-weighted resolved steps (engine.step_shares) and the plain resolved share."""
    from types import SimpleNamespace

    from engine import step_shares

    row, s, to_b = step_journeys(n, rng)
    follow = span - rng.random(n) * span
    resolved = (follow[row] >= WINDOW) | (s + HORIZON <= follow[row])
    steps = SimpleNamespace(s=s, src=np.zeros(len(s), np.int64), dst=np.where(to_b, 1, 2), names=["a", "b", "c"],
                            known_t=np.full(len(s), np.nan))  # no journey end here: steps resolve by H alone
    pick = np.flatnonzero(resolved)
    got = {r["to"]: r for r in step_shares.shares(steps, pick, row[pick], follow, WINDOW, int(HORIZON))}  # type: ignore[arg-type]
    plain = float(to_b[resolved].mean())
    return {"ipcw": (float(got["b"]["share"]), float(got["b"]["se"])), "plain": (plain, float("nan"))}
