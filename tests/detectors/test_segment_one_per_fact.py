"""Segment findings: one per (state, segment key), never a mirror pair; the values that differ are named."""

from __future__ import annotations

import copy

from detector_builders import make_cfg
from test_planted_synthetic import BASE

from detectors.runner import run_detectors
from detectors.synthetic import chain_payload, merge_payloads
from engine.snapshot import Snapshot


def _yes_no(journeys: int = 6000) -> list[Snapshot]:
    big = copy.deepcopy(BASE)
    big["tour"] = {"feature": 0.2, "import": 0.5, "dropped": 0.3}  # big loans reach import far more often
    parts = [chain_payload(chain, journeys=journeys, start="sign_up", scope="segment", segment=("big", value))
             for value, chain in (("true", big), ("false", BASE))]
    return [Snapshot.from_payload(merge_payloads(parts, scope="all"))] + [Snapshot.from_payload(p) for p in parts]


def _segment_findings():
    return [f for f in run_detectors(_yes_no(), make_cfg()).findings if f.type == "segment_divergence"]


def test_a_yes_no_segment_gives_no_mirror_pairs():
    found = _segment_findings()
    per_fact = [(f.subject, f.predicate if f.predicate == "diverges_from" else "reach") for f in found]
    assert len(per_fact) == len(set(per_fact))  # one finding per (state, key), not one per value
    assert [f.subject for f in found if f.predicate == "diverges_from"] in (["segment:big=true"], ["segment:big=false"])
    reach = [f for f in found if f.subject == "state:import"]
    assert [(f.predicate, f.object) for f in reach] == [("more_common_in", "segment:big=true")]


def test_the_finding_names_every_value_and_its_rate():
    f = next(f for f in _segment_findings() if f.subject == "state:import")
    values = {v["value"]: v for v in f.evidence["values"]}
    assert set(values) == {"true", "false"} and f.evidence["segment_key"] == "big"
    assert values["true"]["rate"] == f.evidence["reach_segment"]
    assert values["false"]["rate"] == f.evidence["reach_rest"]  # two values: the rest is the other value
    assert values["true"]["rate"] - values["false"]["rate"] == f.evidence["difference"] > 0.05


def test_the_mirror_value_still_counts_in_the_fdr_family():
    run = run_detectors(_yes_no(), make_cfg())
    seg = [f for f in run.findings if f.type == "segment_divergence"]
    comparison = next(v for k, v in run.tests.items() if k.endswith(":comparison"))
    assert comparison > len(seg)  # the unreported value's tests stay in Benjamini-Hochberg
