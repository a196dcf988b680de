"""Reach and revisit tests on a snapshot's in-progress estimates (`state_estimates`, issue 14).

detectors.activation_driver and detectors.repeated_visit test completed-only
counts. Once a scope has censored journeys its snapshot carries
engine.state_estimates' block: per state, IPCW (Hájek) P(converted | reached),
P(converted | not reached), reach, mean visits and conversion of repeat and
single visitors, each with a journey-clustered sandwich se and a Kish effective
n, over every journey whose end is known by the data end. The tests here read
those, the same way detectors.segment_estimates compares two estimates: a Wald z
of the difference, each side's variance floored at the pooled binomial one at
its effective n (a delta-method variance near 0 or 1 is far too small). Group
sizes (n_reached, n_repeat …) are then effective sizes, the counts when nothing
is censored. With nothing censored in the scope the completed-only tests run,
unchanged. Public so narrator.recompute_formulas applies the same formulas to
recounted snapshots.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from detectors.segment_estimates import Side, compare
from engine.state_estimates import ESTIMATOR

log = logging.getLogger(__name__)
TEST = "wald_z"


def block(view: Any) -> Mapping[str, Any] | None:
    """The scope's `state_estimates` when the detectors should use them (censored journeys in the scope), else None."""
    found = view.payload.get("state_estimates")
    if int(view.payload.get("censored") or 0) <= 0 or not found:
        return None
    return found


def estimable(view: Any, found: Mapping[str, Any]) -> bool:
    """False (and logged) where no journey of the scope has been followed for a whole window: no numbers yet."""
    if "note" in found:
        log.info("snapshot %s (%s): conversion by state %s", view.snapshot_id, view.scope, found["note"])
        return False
    return True


def observed(found: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator and the raw journeys behind the estimates (complete, resolved in progress, unresolved)."""
    j = found["journeys"]
    return {"estimator": ESTIMATOR, "journeys_complete": j["complete"],
            "journeys_resolved_in_progress": j["resolved_in_progress"], "journeys_unresolved": j["unresolved"]}


def wald(p1: float, se1: float, n1: float, p2: float, se2: float, n2: float) -> tuple[float, float]:
    """(z, two-sided p) of p1 − p2 (z > 0 when p1 is higher), variances floored at the pooled binomial."""
    c = compare(Side(float(p1), float(se1) ** 2, float(n1), 0), Side(float(p2), float(se2) ** 2, float(n2), 0))
    return c.z, c.p_value


def reach_numbers(found: Mapping[str, Any], state: str) -> dict[str, Any] | None:
    """A state's 2×2 from the estimates: effective sizes, rates, se, and the Wald test; None when a side is empty."""
    e = found["states"].get(state)
    if e is None or float(e["n_eff_reached"]) <= 0 or float(e["n_eff_not_reached"]) <= 0:
        return None
    z, p = wald(e["p_reached"], e["se_reached"], e["n_eff_reached"], e["p_not_reached"], e["se_not_reached"],
                e["n_eff_not_reached"])
    return {"n_reached": round(float(e["n_eff_reached"])), "n_not_reached": round(float(e["n_eff_not_reached"])),
            "p_reached": float(e["p_reached"]), "p_not_reached": float(e["p_not_reached"]), "z": z, "p_value": p,
            "converted": (int(e["converted_reached"]), int(e["converted_not_reached"])),
            "extra": {"reach": float(e["reach"]), "se_reached": float(e["se_reached"]),
                      "se_not_reached": float(e["se_not_reached"]), "journeys_reached": int(e["reached"]),
                      "journeys_not_reached": int(e["not_reached"]), "journeys_converted_reached": int(e["converted_reached"]),
                      "journeys_converted_not_reached": int(e["converted_not_reached"]), "z": z, **observed(found)}}


def revisit_numbers(found: Mapping[str, Any], state: str, tau: float, merge_lifecycle: bool) -> dict[str, Any]:
    """detectors.repeated_visit.revisit_evidence on the estimates: visits and repeats among visitors (lifecycle
    variants merged when asked and present), the loop test at the visitors' effective n, the gap's Wald test."""
    from detectors.repeated_visit import loop_test

    reach = found["states"][state]
    lifecycle = bool(merge_lifecycle and found.get("lifecycle"))
    e = found["lifecycle"][state] if lifecycle else reach
    n_eff, mean = float(reach["n_eff_reached"]), float(e["visits_mean"])
    _, p = loop_test(mean * n_eff, n_eff, tau)  # (weighted visits) − (weighted visitors) returns of the visits
    z_gap, p_gap = wald(e["p_single"], e["se_single"], e["n_eff_single"], e["p_repeat"], e["se_repeat"],
                        e["n_eff_repeat"])
    p_rep, p_single = float(e["p_repeat"]), float(e["p_single"])
    return {
        "visits_mean": mean, "reach": float(reach["reach"]), "n_reached": round(n_eff),
        "n_repeat": round(float(e["n_eff_repeat"])), "p_convert_repeat": p_rep, "p_convert_single": p_single,
        "conversion_gap": p_single - p_rep, "return_probability": 1.0 - 1.0 / mean if mean else 0.0,
        "test": "geometric_return_z", "gap_p_value": p_gap, "gap_test": TEST, "lifecycle_merged": lifecycle,
        "p_value": p, "repeat_share": float(e["repeat_share"]), "visits_se": float(e["visits_se"]),
        "se_repeat": float(e["se_repeat"]), "se_single": float(e["se_single"]),
        "n_single": round(float(e["n_eff_single"])), "journeys_reached": int(reach["reached"]),
        "journeys_repeat": int(e["repeats"]), **observed(found),
    }
