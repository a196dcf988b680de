"""Hand-built findings, facts and bundles for the narrator tests (deterministic, grounded by construction)."""

from __future__ import annotations

from typing import Any

from narrator.bundle import BundleLimits, ListFactSource, build_bundle
from ontology.model import Fact, Finding, Provenance

WINDOW = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
SNAP = "snap0001"
PROV = Provenance(SNAP, "activation_driver@1", "cfg0001", "0.1.0")


def r6(x: float) -> float:
    return round(float(x), 6)


TYPE_PREDICATE = {
    "activation_driver": "is_activation_driver_for",
    "necessary_for_conversion": "necessary_for_conversion",
    "dropoff_point": "is_dropoff_point_for",
    "dropoff_cluster": "is_dropoff_point_for",
    "regression": "regressed_after",
    "segment_divergence": "diverges_from",
    "repeated_visit": "is_revisited_in",
    "fast_path": "is_fast_path_to",
    "slow_path": "associated_with",
}


def evidence_for(ftype: str, n: int, a: float, b: float, k: int, scale: float) -> tuple[str, str, dict[str, Any]]:
    """(subject, object, evidence) for one finding type; a > b are probabilities, k a count ≤ n."""
    base = {"journey": "activation", "n": n, "p_value": r6(a * 1e-3), "q_value": r6(a * 2e-3)}
    if ftype == "activation_driver":
        ev = {**base, "reach": r6(k / n), "n_reached": k, "p_given_reached": r6(a), "p_given_not_reached": r6(b),
              "lift": r6(r6(a) / r6(b)), "baseline": r6((a + b) / 2), "removal_effect": r6((a - b) / 4),
              "removal_effect_relative": r6(0.5 * (a - b) / a), "absorption": r6(a)}
        return "state:import_data", "outcome:converted", ev
    if ftype == "necessary_for_conversion":
        ev = {**base, "reach": r6(k / n), "n_reached": k, "p_given_reached": r6(a), "p_given_not_reached": 0.0}
        return "state:checkout", "outcome:converted", ev
    if ftype in ("dropoff_point", "dropoff_cluster"):
        ev = {**base, "reach": r6(k / n), "n_reached": k, "exit_probability": r6(b), "dropoff_outcome": "dropped"}
        if ftype == "dropoff_cluster":
            ev["states"] = ["pricing", "billing_form"]
            return "path:pricing>billing_form", "journey:activation", ev
        return "state:pricing", "journey:activation", ev
    if ftype == "regression":
        delta = r6(r6(b) - r6(a))
        ev = {**base, "p_before": r6(a), "p_after": r6(b), "n_before": n, "n_after": k, "delta": delta,
              "relative_change": r6(delta / r6(a)), "z": r6(-scale), "traffic_before": r6(k / n), "traffic_after": r6(k / n / 2),
              "traffic_changed": k < n // 2, "attribution": "release", "releases": ["v2.3"]}
        return "edge:import_data->invite_teammate", "release:v2.3", ev
    if ftype == "segment_divergence":
        ev = {**base, "state": "feature_used", "jsd": r6(b / 3), "n_segment": k, "n_rest": n - k, "test": "chi2"}
        return "segment:plan=pro", "segment:plan=*", ev
    if ftype == "repeated_visit":
        ev = {**base, "visits_mean": r6(1 + scale), "reach": r6(k / n), "n_reached": k, "n_repeat": k // 3,
              "p_convert_repeat": r6(b), "p_convert_single": r6(a), "conversion_gap": r6(r6(a) - r6(b)),
              "extra_expected_steps": r6(scale / 2)}
        return "state:settings", "journey:activation", ev
    ev = {**base, "count": k, "share": r6(k / n), "conversion_rate": r6(a), "median_duration_s": r6(scale * 3600),
          "median_length": 4, "quality": r6(a / (scale * 4))}
    if ftype == "slow_path":
        ev["kind"] = "slow_path"
    return "path:sign_up>import_data>invite_teammate", "outcome:converted", ev


def make_finding(ftype: str = "activation_driver", n: int = 1800, a: float = 0.576923, b: float = 0.123,
                 k: int = 810, scale: float = 2.5, label: str = "High", subject: str | None = None) -> Finding:
    subj, obj, ev = evidence_for(ftype, n, a, b, k, scale)
    if subject is not None:
        subj = subject
    return Finding(type=ftype, detector=f"{ftype}@1", journey="activation", subject=subj,
                   predicate=TYPE_PREDICATE[ftype], object=obj, snapshot_id=SNAP, n=n, effect=r6(a - b),
                   p_value=ev["p_value"], q_value=ev["q_value"], confidence=0.93, confidence_label=label,
                   evidence=ev, window=WINDOW, reach=r6(k / n),
                   release="v2.3" if ftype == "regression" else None,
                   segment="plan=pro" if ftype == "segment_divergence" else None)


def transition(src: str, dst: str, count: int, total: int, conf: float = 0.9) -> Fact:
    return Fact(f"state:{src}", "transitions_to", dst if ":" in dst else f"state:{dst}", conf, WINDOW[0], WINDOW[1],
                {"journey": "activation", "count": count, "from_total": total, "probability": r6(count / total)}, PROV)


def related_facts(subject_state: str = "import_data") -> list[Fact]:
    return [
        transition(subject_state, "invite_teammate", 700, 1000),
        transition("feature_used", subject_state, 440, 1000),
        transition(subject_state, "outcome:converted", 80, 1000, conf=0.95),
        transition("sign_up", "feature_used", 520, 1000, conf=0.2),  # below min confidence, unrelated
    ]


def make_bundle(ftype: str = "activation_driver", facts: list[Fact] | None = None, **kw: Any) -> dict[str, Any]:
    finding = make_finding(ftype, **kw)
    source = ListFactSource(facts if facts is not None else related_facts())
    return build_bundle(finding, source, BundleLimits(max_facts=6, min_confidence=0.5))
