"""The feed ranks by what is at stake: most data wins a merge, persistence keeps rank, one entry per fact."""

from __future__ import annotations

import pytest
from detector_builders import make_cfg, snap

from detectors.runner import run_detectors
from engine.config import DEFAULT_WEIGHTS
from engine.feed import feed_item, rank
from fixtures.paper_chain import FIGURE2
from ontology.model import Finding

DAY = ("2018-09-30T00:00:00Z", "2018-10-01T00:00:00Z")       # all the data: one day
WEEK = ("2018-09-24T00:00:00Z", "2018-10-01T00:00:00Z")      # a 7-day period, nominally wider
WEEKS = [(f"2026-01-{d:02d}T00:00:00Z", f"2026-01-{d + 7:02d}T00:00:00Z") for d in (5, 12, 19)]
STAKE = {"per_journey": 0.05, "baseline_per_journey": 0.5, "per_week": 10.0, "low": 8.0, "high": 12.0}


def _f(window, snapshot_id, scope, **kw):
    evidence = {"journey": "activation", "scope": scope, "at_stake": dict(STAKE)}
    evidence.update(kw.pop("evidence", {}))
    base = dict(type="activation_driver", detector="activation_driver@1", journey="activation",
                subject="state:import_data", predicate="is_activation_driver_for", object="outcome:converted",
                snapshot_id=snapshot_id, n=1800, effect=0.5, p_value=0.001, q_value=0.004, confidence=0.95,
                confidence_label="High", evidence=evidence, window=window, reach=0.45)
    base.update(kw)
    return Finding(**base)


def test_merge_keeps_the_finding_with_most_data_not_the_widest_window():
    everything = _f(DAY, "all", "all", n=3907)
    night = _f(WEEK, "night", "period", n=546)
    [entry] = rank([night, everything], dict(DEFAULT_WEIGHTS))
    assert entry.finding.snapshot_id == "all" and entry.finding.n == 3907
    assert (entry.seen, entry.periods) == (1, 1)
    assert entry.persistence == ("Holds in 1 of 1 period snapshots, the first starting 2018-09-24 "
                                 "(seen counts the period snapshots holding it).")


def test_persisting_finding_keeps_its_rank():
    persisting = [_f(w, f"p{i}", "period") for i, w in enumerate(WEEKS)]
    new = _f(WEEKS[-1], "p2", "period", subject="state:invite")
    entries = {e.finding.subject: e for e in rank([*persisting, new], dict(DEFAULT_WEIGHTS))}
    assert entries["state:import_data"].seen == 3 and entries["state:invite"].seen == 1
    assert entries["state:import_data"].score == entries["state:invite"].score > 0


def test_finding_gone_from_latest_periods_loses_recency():
    old = _f(WEEKS[0], "p0", "period", subject="state:old")
    current = [_f(w, f"p{i}", "period") for i, w in enumerate(WEEKS)]
    entries = {e.finding.subject: e for e in rank([old, *current], dict(DEFAULT_WEIGHTS))}
    assert entries["state:old"].components["novelty"] == pytest.approx(0.548812, abs=1e-6)  # missing from 2 periods
    assert entries["state:old"].score < entries["state:import_data"].score


def test_bigger_stake_ranks_first_whatever_the_lift():
    big = _f(DAY, "all", "all", subject="state:a", effect=21.0, evidence={"at_stake": {**STAKE, "per_journey": 0.14}})
    small = _f(DAY, "all", "all", subject="state:b", effect=6.0, reach=0.9)
    assert [e.finding.subject for e in rank([small, big], dict(DEFAULT_WEIGHTS))] == ["state:a", "state:b"]


def test_segment_restatements_merge_into_one_entry():
    def seg(state, reach_diff, predicate="more_common_in", value="false"):
        return _f(DAY, f"seg-{value}", "segment", type="segment_divergence", detector="segment_divergence@2",
                  subject=f"state:{state}", predicate=predicate, object=f"segment:amount_under_5k={value}",
                  segment=f"amount_under_5k={value}", effect=reach_diff,
                  evidence={"at_stake": {**STAKE, "per_journey": reach_diff / 10}})
    found = [seg("A_PREACCEPTED", 0.33), seg("A_ACCEPTED", 0.31), seg("A_FINALIZED", 0.30),
             seg("A_DECLINED", -0.2, "less_common_in")]
    entries = rank(found, dict(DEFAULT_WEIGHTS))
    assert [(e.finding.subject, e.finding.predicate) for e in entries] == [
        ("state:A_PREACCEPTED", "more_common_in"), ("state:A_DECLINED", "less_common_in")]
    assert [a.subject for a in entries[0].also] == ["state:A_ACCEPTED", "state:A_FINALIZED"]
    item = feed_item(entries[0], None)
    assert [a["subject"] for a in item["also_holds_for"]] == ["state:A_ACCEPTED", "state:A_FINALIZED"]
    assert item["at_stake"]["per_week"] == 10.0 and item["periods"] == 0


@pytest.fixture(scope="module")
def paper_feed():
    run = run_detectors([snap(FIGURE2, journeys=100_000)], make_cfg())
    return rank(run.findings, make_cfg())


def test_paper_chain_import_data_is_first_driver_and_in_top3(paper_feed):
    drivers = [e.finding.subject for e in paper_feed if e.finding.type == "activation_driver"]
    assert drivers[0] == "state:import_data"
    assert "state:import_data" in [e.finding.subject for e in paper_feed[:3]]
    assert drivers == ["state:import_data", "state:feature_used", "state:invite_teammate"]  # the paper's removal order


def test_paper_chain_stake_is_the_removal_effect_per_week(paper_feed):
    top = paper_feed[0].finding
    stake = top.evidence["at_stake"]
    assert stake["per_journey"] == pytest.approx(0.1416, abs=1e-4)  # the paper's removal effect of import_data
    assert stake["baseline_per_journey"] == pytest.approx(0.1649, abs=1e-4)
    assert stake["per_week"] == pytest.approx(stake["per_journey"] * stake["journeys_per_week"], rel=1e-5)
    assert stake["low"] < stake["per_week"] < stake["high"]
    assert stake["direction"] == "more" and stake["method"] == "chain"
    assert top.evidence["first_order_approximation"] is False
    assert paper_feed[0].components["magnitude"] == pytest.approx(0.1416 / 0.1649, abs=1e-3)  # uncapped share
