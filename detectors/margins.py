"""How far a finding's effect sits above each of its detector's reporting floors, in standard errors.

A finding reported just above a floor (lift 1.52 against min_lift 1.5) is
likely to fall below it in another sample, however small its p-value; the
confidence model (detectors/confidence.py) turns each margin m into the
probability Φ(m/√2) that a same-sized replicate clears the floor too. Margins
are read from the finding's evidence and its detector's config; a floor whose
inputs are missing contributes nothing. Standard errors are the usual
binomial ones (log-lift by the delta method).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from ontology.model import Finding

Margins = Callable[[Finding, Any, int], list[float]]


def margins(f: Finding, config: Any, n_min: int) -> list[float]:
    """Standardised margins of `f` above its detector's floors (empty when none apply)."""
    fn = _BY_TYPE.get(f.type)
    if fn is None:
        return []
    try:
        return [m for m in fn(f, config, n_min) if math.isfinite(m)]
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return []


def _prop(value: float, floor: float, n: float) -> float:
    """(p − floor) / SE(p) for a proportion p over n."""
    se = math.sqrt(max(value * (1.0 - value), 1e-12) / max(n, 1.0))
    return (value - floor) / se


def _count(count: float, floor: float) -> float:
    """(count − floor) / √count: a count's Poisson margin above a sample-size floor."""
    return (count - floor) / math.sqrt(max(count, 1.0))


def _diff(p1: float, n1: float, p2: float, n2: float, floor: float) -> float:
    se = math.sqrt(max(p1 * (1 - p1), 1e-12) / max(n1, 1.0) + max(p2 * (1 - p2), 1e-12) / max(n2, 1.0))
    return (abs(p1 - p2) - floor) / se


def _activation(f: Finding, cfg: Any, n_min: int) -> list[float]:
    ev: Mapping[str, Any] = f.evidence
    n1 = float(ev["n_reached"])
    n0 = float(ev.get("n_not_reached", f.n - n1))
    out = [_prop(float(ev["reach"]), cfg.min_reach, f.n), _count(n1, n_min)]
    p1, p0 = float(ev["p_given_reached"]), float(ev["p_given_not_reached"])
    if f.type == "activation_driver" and p1 > 0 and p0 > 0:
        se = math.sqrt((1 - p1) / (p1 * n1) + (1 - p0) / (p0 * n0))
        out.append((math.log(p1 / p0) - math.log(cfg.min_lift)) / se)
    return out


def _dropoff(f: Finding, cfg: Any, n_min: int) -> list[float]:
    ev = f.evidence
    rate, out_n = float(ev["exit_probability"]), float(f.n)
    found = [_prop(rate, cfg.min_exit, out_n), _count(out_n, n_min), _prop(float(ev["reach"]), cfg.min_reach, f.n)]
    if "baseline_exit" in ev:
        found.append(_prop(rate, float(ev["baseline_exit"]) + cfg.min_excess, out_n))
    return found


def _regression(f: Finding, cfg: Any, n_min: int) -> list[float]:
    ev = f.evidence
    p1, n1, p2, n2 = float(ev["p_before"]), float(ev["n_before"]), float(ev["p_after"]), float(ev["n_after"])
    out = [_diff(p2, n2, p1, n1, cfg.min_delta), _count(n1, n_min), _count(n2, n_min)]
    if p1 > 0:
        out.append(_diff(p2, n2, p1, n1, cfg.min_relative * p1))
    return out


def _segment(f: Finding, cfg: Any, n_min: int) -> list[float]:
    ev = f.evidence
    if "reach_segment" not in ev:
        return []  # diverges_from: the JSD floor has no simple standard error
    return [_diff(float(ev["reach_segment"]), float(ev["n_segment"]), float(ev["reach_rest"]), float(ev["n_rest"]),
                  cfg.min_reach_difference)]


def _path(f: Finding, cfg: Any, n_min: int) -> list[float]:
    ev = f.evidence
    floor = cfg.slow_min_share if f.type == "slow_path" else cfg.min_share
    return [_prop(float(ev["share"]), floor, f.n), _count(float(ev["count"]), n_min)]


_BY_TYPE: dict[str, Margins] = {
    "activation_driver": _activation, "necessary_for_conversion": _activation,
    "dropoff_point": _dropoff, "dropoff_cluster": _dropoff, "regression": _regression,
    "segment_divergence": _segment, "fast_path": _path, "slow_path": _path,
    "repeated_visit": lambda f, cfg, n_min: [_count(f.n, n_min)],
}
