"""Detectors on the paper's Figure 2 chain: ranking, determinism, versioning, facts."""

from __future__ import annotations

import pytest
from detector_builders import make_cfg

from detectors.activation_driver import ActivationDriver
from detectors.registry import Registry
from detectors.runner import run_detectors
from ontology.validation import validate_facts


def _drivers(run):
    return sorted((f for f in run.findings if f.type == "activation_driver"), key=lambda f: f.evidence["removal_rank"])


def test_removal_effect_ranking_matches_paper(paper_snapshot):
    run = run_detectors([paper_snapshot], make_cfg())
    drivers = _drivers(run)
    assert [f.subject for f in drivers] == ["state:import_data", "state:feature_used", "state:invite_teammate"]
    assert [round(f.evidence["removal_effect"], 4) for f in drivers] == [0.1416, 0.1232, 0.0770]
    assert drivers[0].evidence["absorption"] == pytest.approx(0.5770, abs=1e-4)


def test_activation_evidence_is_consistent(paper_snapshot):
    f = _drivers(run_detectors([paper_snapshot], make_cfg()))[0]
    ev = f.evidence
    assert ev["lift"] == pytest.approx(ev["p_given_reached"] / ev["p_given_not_reached"], rel=1e-5)
    assert ev["p_given_reached"] == pytest.approx(0.5770, abs=1e-3)  # P(conv | reached) = B[s, conv]
    assert f.q_value <= 0.05 and f.confidence_label == "High"


def test_same_snapshot_same_findings_and_ids(paper_snapshot):
    first = run_detectors([paper_snapshot], make_cfg())
    second = run_detectors([paper_snapshot], make_cfg())
    assert [f.to_dict() for f in first.findings] == [f.to_dict() for f in second.findings]
    assert [f.fact_id for f in first.facts] == [f.fact_id for f in second.facts]
    assert first.findings


def test_version_bump_gives_new_ids_and_leaves_old_ones(paper_snapshot):
    v1 = Registry()
    v1.register(ActivationDriver)
    before = run_detectors([paper_snapshot], make_cfg(), registry=v1)

    class ActivationDriverV2(ActivationDriver):
        """Same logic, new version: ids must change."""

        version = ActivationDriver.version + 1

    v2 = Registry()
    v2.register(ActivationDriverV2)
    after = run_detectors([paper_snapshot], make_cfg(), registry=v2)
    again = run_detectors([paper_snapshot], make_cfg(), registry=v1)
    assert {f.detector for f in after.findings} == {f"activation_driver@{ActivationDriver.version + 1}"}
    assert not {f.finding_id for f in before.findings} & {f.finding_id for f in after.findings}
    assert [f.finding_id for f in before.findings] == [f.finding_id for f in again.findings]
    assert [f.to_dict() for f in before.findings] == [f.to_dict() for f in again.findings]


def test_facts_validate_against_schemas(paper_snapshot):
    run = run_detectors([paper_snapshot], make_cfg())
    validate_facts(run.facts)
    predicates = {f.predicate for f in run.facts}
    assert {"transitions_to", "increases_probability_of", "is_activation_driver_for"} <= predicates
    edges = [f for f in run.facts if f.predicate == "transitions_to" and f.subject == "state:import_data"
             and f.object == "state:invite_teammate"]
    assert edges and edges[0].evidence["probability"] == pytest.approx(0.70, abs=1e-4)
    assert all(f.provenance.snapshot_id == paper_snapshot.snapshot_id for f in run.facts)


def test_min_group_size_holds_back_small_groups(paper_snapshot):
    run = run_detectors([paper_snapshot], make_cfg(min_group=10**7))
    assert run.findings == ()
    assert not [f for f in run.facts if f.predicate == "transitions_to"]


def test_fdr_setting_validated(paper_snapshot):
    from ontology.errors import ConfigError

    with pytest.raises(ConfigError, match="detectors.fdr_q"):
        run_detectors([paper_snapshot], make_cfg({"fdr_q": 3}))


def test_necessary_for_conversion_when_nobody_converts_without_the_state():
    from detector_builders import snap

    chain = {"sign_up": {"checkout": 0.5, "dropped": 0.5}, "checkout": {"converted": 0.6, "dropped": 0.4}}
    run = run_detectors([snap(chain, journeys=5000)], make_cfg())
    nec = [f for f in run.findings if f.type == "necessary_for_conversion"]
    assert [f.subject for f in nec] == ["state:checkout"]
    assert nec[0].evidence["p_given_not_reached"] == 0.0
    validate_facts(run.facts)


def test_trapped_loop_skips_the_ranking_instead_of_crashing():
    from detectors.synthetic import chain_payload
    from engine.snapshot import Snapshot

    chain = {"sign_up": {"checkout": 0.5, "converted": 0.1, "dropped": 0.4}, "checkout": {"converted": 0.6, "dropped": 0.4}}
    payload = chain_payload(chain, journeys=5000, start="sign_up")
    payload["states"] = sorted(payload["states"] + ["zz_trap"])
    payload["transitions"].append({"from": "zz_trap", "to": "zz_trap", "count": 50})
    run = run_detectors([Snapshot.from_payload(payload)], make_cfg())
    assert not [f for f in run.findings if f.type == "activation_driver"]
    assert run.tests  # the tests were still counted


def test_every_test_performed_counts_in_its_family(paper_snapshot):
    run = run_detectors([paper_snapshot], make_cfg())
    # structure: 3 reach tests (every state but the start) + 4 exit tests (every state)
    #            + 4 loop tests and 4 conversion-gap tests (repeated_visit); no paths in this payload
    # comparison: nothing to compare with a single all-data snapshot
    assert dict(run.tests) == {"activation:structure": 15, "activation:comparison": 0}
    assert len(run.findings) < 15  # most tests produced no finding, and still counted
