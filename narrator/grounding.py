"""Grounding validation: a bundle whose numbers contradict each other is never narrated.

Checks run on the bundle dict (so `verify` and stored bundles are checked the
same way) and use the contract's rounding: a float rounded to 6 decimals stands for
an interval of half a unit in its last place, and a derived number
(lift, probability, delta, difference) must fall inside the interval its inputs
allow. What is checked:

- the bundle hash matches its content and facts[0] is the finding's own claim;
- probabilities, rates, p and q values, confidences lie in [0, 1];
- lift ≈ p_given_reached / p_given_not_reached; absent or None when the latter is 0;
- transitions: probability ≈ count / from_total, count ≤ from_total;
- removal effect: B′ = baseline − removal_effect lies in [0, 1]; relative effect ≤ 1;
- regressions: delta ≈ p_after − p_before, relative_change ≈ delta / p_before;
- segment reach: difference ≈ reach_segment − reach_rest, positive for
  more_common_in and negative for less_common_in;
- n_reached ≤ n, n ≥ the minimum sample size, q present and q ≥ p.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from narrator.bundle import bundle_hash
from ontology.errors import GroundingError

UNIT_KEYS = frozenset({
    "probability", "p_given_reached", "p_given_not_reached", "reach", "exit_probability", "p_value",
    "q_value", "absorption", "baseline", "reach_segment", "reach_rest", "p_before", "p_after", "share",
    "conversion_rate", "p_convert_repeat", "p_convert_single", "jsd", "confidence", "coverage",
    "traffic_before", "traffic_after",
})
LABELS = ("High", "Medium", "Low")


@dataclass(frozen=True)
class GroundingIssue:
    """One reason a bundle may not be narrated; `where` names the fact or finding field."""

    rule: str
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.rule} at {self.where}: {self.message}"


DECIMALS = 6  # docs/contracts.md: evidence floats are rounded to 6 decimals


def half_unit(x: float | int) -> float:
    """Half a unit in the last place the contract rounds to (0 for exact integer counts)."""
    if isinstance(x, int):
        return 0.0
    return 0.5 * 10.0 ** -DECIMALS


def _ratio_bounds(a: float, b: float) -> tuple[float, float]:
    ha, hb = half_unit(a), half_unit(b)
    lo_b, hi_b = max(b - hb, 1e-15), b + hb
    return max(a - ha, 0.0) / hi_b, (a + ha) / lo_b


def _close(derived: float, lo: float, hi: float, own: float) -> bool:
    slack = half_unit(own) + 1e-9 * max(1.0, abs(own))
    return lo - slack <= derived <= hi + slack


def _num(ev: Mapping[str, Any], key: str) -> float | None:
    value = ev.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _check_units(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    out = []
    for key in sorted(UNIT_KEYS & set(ev)):
        value = _num(ev, key)
        if value is not None and not 0.0 <= value <= 1.0:
            out.append(GroundingIssue("PROBABILITY_RANGE", f"{where}.{key}", f"{value} is outside [0, 1]"))
    return out


def _check_lift(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    pr, pn, lift = _num(ev, "p_given_reached"), _num(ev, "p_given_not_reached"), _num(ev, "lift")
    if pr is None or pn is None:
        return []
    if pn == 0.0:
        if lift is not None:
            return [GroundingIssue("LIFT_UNDEFINED", f"{where}.lift",
                                   f"lift {lift} given but p_given_not_reached is 0 (necessary_for_conversion)")]
        return []
    if lift is None:
        return []
    lo, hi = _ratio_bounds(pr, pn)
    if not _close(lift, lo, hi, lift):
        return [GroundingIssue("LIFT_INCONSISTENT", f"{where}.lift",
                               f"lift {lift} but p_given_reached/p_given_not_reached = {pr}/{pn} = {pr / pn:.6f}")]
    return []


def _check_transition(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    count, total, prob = _num(ev, "count"), _num(ev, "from_total"), _num(ev, "probability")
    if count is None or total is None or prob is None:
        return []
    if total <= 0 or count > total:
        return [GroundingIssue("COUNT_RANGE", f"{where}.count", f"count {count:g} outside [0, from_total {total:g}]")]
    if not _close(count / total, prob, prob, prob):
        return [GroundingIssue("PROBABILITY_INCONSISTENT", f"{where}.probability",
                               f"probability {prob} but count/from_total = {count:g}/{total:g} = {count / total:.6f}")]
    return []


def _check_removal(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    out = []
    base, effect, rel = _num(ev, "baseline"), _num(ev, "removal_effect"), _num(ev, "removal_effect_relative")
    if base is not None and effect is not None:
        after = base - effect
        slack = half_unit(base) + half_unit(effect) + 1e-9
        if not -slack <= after <= 1.0 + slack:
            out.append(GroundingIssue("REMOVAL_INCONSISTENT", f"{where}.removal_effect",
                                      f"baseline {base} − removal_effect {effect} = {after:.6f} is not a probability"))
    if rel is not None and rel > 1.0 + half_unit(rel):
        out.append(GroundingIssue("REMOVAL_INCONSISTENT", f"{where}.removal_effect_relative",
                                  f"relative removal effect {rel} exceeds 1"))
    return out


def _check_difference(ev: Mapping[str, Any], where: str, key: str, a: str, b: str) -> list[GroundingIssue]:
    d, x, y = _num(ev, key), _num(ev, a), _num(ev, b)
    if d is None or x is None or y is None:
        return []
    slack = half_unit(x) + half_unit(y)
    if _close(d, x - y - slack, x - y + slack, d) or _close(-d, x - y - slack, x - y + slack, d):
        return []
    return [GroundingIssue("DIFFERENCE_INCONSISTENT", f"{where}.{key}", f"{key} {d} but {a} − {b} = {x - y:.6f}")]


def _check_relative(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    rel, delta, before = _num(ev, "relative_change"), _num(ev, "delta"), _num(ev, "p_before")
    if rel is None or delta is None or not before:
        return []
    lo, hi = _ratio_bounds(abs(delta), before)
    if _close(abs(rel), lo, hi, rel):
        return []
    return [GroundingIssue("RELATIVE_INCONSISTENT", f"{where}.relative_change",
                           f"relative_change {rel} but delta/p_before = {delta}/{before} = {delta / before:.6f}")]


def _check_counts(ev: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    n, reached = _num(ev, "n"), _num(ev, "n_reached")
    if n is not None and reached is not None and reached > n:
        return [GroundingIssue("COUNT_RANGE", f"{where}.n_reached", f"n_reached {reached:g} exceeds n {n:g}")]
    return []


EVIDENCE_CHECKS: tuple[Callable[[Mapping[str, Any], str], list[GroundingIssue]], ...] = (
    _check_units, _check_lift, _check_transition, _check_removal, _check_relative, _check_counts,
    lambda ev, w: _check_difference(ev, w, "delta", "p_after", "p_before"),
    lambda ev, w: _check_difference(ev, w, "difference", "reach_segment", "reach_rest"),
)


PREDICATE_SIGNS = {"more_common_in": ("difference", 1), "less_common_in": ("difference", -1)}


def _check_predicate_sign(item: Mapping[str, Any], where: str) -> list[GroundingIssue]:
    """A predicate that states a direction (more / less common) must agree with its evidence's sign."""
    key, sign = PREDICATE_SIGNS.get(str(item.get("predicate")), ("", 0))
    value = _num(item.get("evidence", {}), key) if key else None
    if value is None or value * sign > 0:
        return []
    return [GroundingIssue("PREDICATE_SIGN", f"{where}.evidence.{key}",
                           f"{item.get('predicate')} but {key} is {value}")]


def _check_finding(finding: Mapping[str, Any], min_n: int) -> list[GroundingIssue]:
    out: list[GroundingIssue] = []
    where = f"finding {str(finding.get('finding_id', '?'))[:12]}"
    n = finding.get("n")
    if not isinstance(n, int) or n < min_n:
        out.append(GroundingIssue("SAMPLE_TOO_SMALL", f"{where}.n", f"n = {n} is below the minimum {min_n}"))
    q, p = finding.get("q_value"), finding.get("p_value")
    if not isinstance(q, (int, float)) or isinstance(q, bool):
        out.append(GroundingIssue("Q_VALUE_MISSING", f"{where}.q_value", "no q-value (multiple-testing control)"))
    elif isinstance(p, (int, float)) and float(q) < float(p) - half_unit(p) - half_unit(q):
        out.append(GroundingIssue("Q_VALUE_INCONSISTENT", f"{where}.q_value", f"q-value {q} is below p-value {p}"))
    if finding.get("confidence_label") not in LABELS:
        out.append(GroundingIssue("CONFIDENCE_LABEL", f"{where}.confidence_label",
                                  f"{finding.get('confidence_label')!r} is not one of {', '.join(LABELS)}"))
    out.extend(_check_units({k: finding.get(k) for k in ("p_value", "q_value", "confidence", "reach")}, where))
    for check in EVIDENCE_CHECKS:
        out.extend(check(finding.get("evidence", {}), f"{where}.evidence"))
    return out + _check_predicate_sign(finding, where)


def _check_structure(bundle: Mapping[str, Any]) -> list[GroundingIssue]:
    out = []
    if bundle.get("bundle_hash") != bundle_hash(bundle):
        out.append(GroundingIssue("BUNDLE_HASH", "bundle_hash", "the hash does not match the content (edited bundle)"))
    finding, facts = bundle["finding"], bundle["facts"]
    head = facts[0] if facts else {}
    if [head.get(k) for k in ("subject", "predicate", "object")] != [finding.get(k) for k in ("subject", "predicate", "object")]:
        out.append(GroundingIssue("PRIMARY_FACT", "facts[0]", "the first fact is not the finding's own claim"))
    ids = [f.get("fact_id") for f in facts]
    if len(set(ids)) != len(ids):
        out.append(GroundingIssue("DUPLICATE_FACT", "facts", "a fact id appears twice"))
    return out


def grounding_issues(bundle: Mapping[str, Any], min_n: int = 30) -> list[GroundingIssue]:
    """Every reason this bundle may not be narrated (empty list = grounded)."""
    issues = _check_structure(bundle) + _check_finding(bundle["finding"], min_n)
    for fact in bundle["facts"]:
        where = f"fact {str(fact.get('fact_id'))[:12]}"
        issues.extend(_check_units({"confidence": fact.get("confidence")}, where))
        for check in EVIDENCE_CHECKS:
            issues.extend(check(fact.get("evidence", {}), f"{where}.evidence"))
        issues.extend(_check_predicate_sign(fact, where))
    return issues


def require_grounded(bundle: Mapping[str, Any], min_n: int = 30) -> None:
    """Raise GroundingError naming every failed check; narration must not start otherwise."""
    issues = grounding_issues(bundle, min_n)
    if issues:
        reasons = "; ".join(str(i) for i in issues)
        raise GroundingError(f"bundle {str(bundle.get('bundle_hash'))[:12]} for finding "
                             f"{bundle['finding'].get('finding_id')} is not grounded: {reasons}; "
                             "fix the detector output or rebuild the bundle")
