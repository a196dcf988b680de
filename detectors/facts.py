"""Findings → facts for the knowledge graph, plus the base facts of each all-data snapshot.

Each finding gives its primary fact (same subject, predicate, object and
evidence) and supporting facts: an activation driver also states
`increases_probability_of`, a drop-off point the `transitions_to` edge into
the drop-off outcome. Every all-data snapshot adds `transitions_to` for each
edge with count ≥ privacy.min_group_size and `increases_probability_of` for
each state with lift > 1 whose 2×2 test is significant after Benjamini-Hochberg
(q ≤ detectors.fdr_q in the run's family), unless the state is part of an
outcome (detectors.leakage). Provenance: snapshot id, detector@version, config hash, engine
version; the validity window is the snapshot's window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from detectors.base_facts import rate_facts
from detectors.confidence import ConfidenceModel
from detectors.defaults import FDR_Q
from detectors.shared import SHARED, ReachTest
from detectors.stake import FINDING_ONLY
from detectors.stats import r6, z_from_p
from detectors.view import SnapView
from ontology.model import Fact, Finding, Provenance

BASE_DETECTOR = "journey_graph@1"  # provenance of base facts read straight off the snapshot's counts


def build_facts(findings: Sequence[Finding], views: Sequence[SnapView], cfg: Any,
                q_by_label: Mapping[str, float], model: ConfidenceModel) -> list[Fact]:
    by_id = {v.snapshot_id: v for v in views}
    facts: dict[str, Fact] = {}
    for f in findings:
        for fact in finding_facts(f, cfg.config_hash, _engine_version(by_id.get(f.snapshot_id))):
            facts.setdefault(fact.fact_id, fact)
    for view in views:
        if view.scope == "all" and view.mature:
            for fact in base_facts(view, cfg, q_by_label, model):
                facts.setdefault(fact.fact_id, fact)
    for fact in rate_facts(views, cfg, model, _engine_version):  # outcome rates per scope (detectors/base_facts.py)
        facts.setdefault(fact.fact_id, fact)
    return sorted(facts.values(), key=lambda x: (x.subject, x.predicate, x.object, x.valid_from, x.fact_id))


def finding_facts(f: Finding, config_hash: str, engine_version: str) -> list[Fact]:
    """The finding's primary fact and its supporting facts."""
    prov = Provenance(f.snapshot_id, f.detector, config_hash, engine_version)
    window = f.window
    evidence = {k: v for k, v in f.evidence.items() if k not in FINDING_ONLY}
    primary = Fact(f.subject, f.predicate, f.object, f.confidence, window[0], window[1], evidence, prov)
    out = [primary]
    ev = f.evidence
    if f.type == "activation_driver":
        support = {"journey": f.journey, "p_given_reached": ev["p_given_reached"],
                   "p_given_not_reached": ev["p_given_not_reached"], "lift": ev["lift"],
                   "n_reached": ev["n_reached"], "n_not_reached": int(f.n) - int(ev["n_reached"]),
                   "n": f.n, "p_value": ev["p_value"], "q_value": ev["q_value"]}
        out.append(Fact(f.subject, "increases_probability_of", f.object, f.confidence, window[0], window[1],
                        support, prov))
    elif f.type == "dropoff_point" and "loss_exits" in ev:
        for outcome, count in sorted(ev["loss_exits"].items()):
            support = {"journey": f.journey, "count": count, "from_total": f.n, "probability": r6(count / f.n)}
            out.append(Fact(f.subject, "transitions_to", f"outcome:{outcome}", f.confidence,
                            window[0], window[1], support, prov))
    return out


def base_facts(view: SnapView, cfg: Any, q_by_label: Mapping[str, float], model: ConfidenceModel) -> list[Fact]:
    """transitions_to per edge (count ≥ min_group_size) and increases_probability_of per state with lift > 1."""
    min_group = int(cfg.privacy.min_group_size)
    prov = Provenance(view.snapshot_id, BASE_DETECTOR, cfg.config_hash, _engine_version(view))
    start, end = view.window
    outcomes = set(view.payload.get("outcomes", []))
    facts = []
    for (src, dst), count in sorted(view.counts.items()):
        if count < min_group:
            continue
        total = view.out_total(src)
        obj = f"outcome:{dst}" if dst in outcomes else f"state:{dst}"
        ev = {"journey": view.journey, "count": count, "from_total": total, "probability": r6(count / total)}
        conf = model.score(0.0, count, min_group, 0.0)
        facts.append(Fact(f"state:{src}", "transitions_to", obj, conf, start, end, ev, prov))
    tests: dict[str, ReachTest] = SHARED["reach_tests"](view)
    parts = SHARED["outcome_parts"](view)
    fdr_q = float(dict(cfg.detectors).get("fdr_q", FDR_Q))
    for state, t in sorted(tests.items()):
        q = q_by_label.get(f"reach:{view.snapshot_id}:{state}")
        if (t.lift is None or t.lift <= 1.0 or min(t.n_reached, t.n_not_reached) < min_group or state in parts
                or q is None or q > fdr_q):  # asserted only when significant after BH, like a finding
            continue
        ev = {"journey": view.journey, "p_given_reached": r6(t.p_given_reached),
              "p_given_not_reached": r6(t.p_given_not_reached), "lift": r6(t.lift), "n_reached": t.n_reached,
              "n_not_reached": t.n_not_reached, "n": t.n, "p_value": r6(t.p_value), "q_value": r6(q)}
        conf = model.score(z_from_p(t.p_value), t.n, min_group, t.lift - 1.0)
        facts.append(Fact(f"state:{state}", "increases_probability_of", f"outcome:{view.conversion}", conf,
                          start, end, ev, prov))
    return facts


def _engine_version(view: SnapView | None) -> str:
    if view is not None and view.payload.get("engine_version"):
        return str(view.payload["engine_version"])
    import engine

    return str(getattr(engine, "__version__", "0"))
