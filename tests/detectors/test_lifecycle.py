"""Insights open and close (issue 14, part 4): new → persisting → resolved, and one notice per resolution."""

from __future__ import annotations

from typing import Any

import pytest

from engine import lifecycle
from engine.app import watch
from engine.config import DEFAULT_WEIGHTS, Webhook
from engine.feed import feed_item, rank
from engine.workspace import Workspace
from ontology.model import Finding

STAKE = {"per_journey": 0.05, "baseline_per_journey": 0.5, "per_week": 10.0, "low": 8.0, "high": 12.0}
AFTER_A = ("2026-01-29T00:00:00Z", "2026-02-12T00:00:00Z")
AFTER_B = ("2026-02-12T00:00:00Z", "2026-02-26T00:00:00Z")


def _regression(release: str, window: tuple[str, str], before: float, after: float, **kw: Any) -> Finding:
    evidence = {"scope": "release_after", "at_stake": dict(STAKE), "p_before": before, "p_after": after,
                "delta": after - before, "n_before": 900, "n_after": 700}
    base = dict(type="regression", detector="regression@2", journey="activation", subject="edge:checkout->dropped",
                predicate="regressed_after", object=f"release:{release}", snapshot_id=f"after-{release}", n=1600,
                effect=(after - before) / before, p_value=1e-6, q_value=1e-5, confidence=0.9,
                confidence_label="High", evidence=evidence, window=window, reach=0.6,
                actionable=after > before, release=release)
    base.update(kw)
    return Finding(**base)


def _driver(subject: str = "state:import_data") -> Finding:
    return Finding(type="activation_driver", detector="activation_driver@2", journey="activation", subject=subject,
                   predicate="is_activation_driver_for", object="outcome:converted", snapshot_id="all", n=1800,
                   effect=0.5, p_value=0.001, q_value=0.004, confidence=0.95, confidence_label="High",
                   evidence={"scope": "all", "at_stake": dict(STAKE)}, window=AFTER_A, reach=0.45)


def test_regression_undone_by_a_later_release_is_resolved_after_it():
    broke, fixed = _regression("v2", AFTER_A, 0.20, 0.45), _regression("v3", AFTER_B, 0.45, 0.21)
    entries = {e.finding.release: e for e in rank([broke, fixed, _driver()], dict(DEFAULT_WEIGHTS))}
    assert entries["v2"].status == "resolved"
    assert entries["v2"].resolution == {"release": "v3", "p_baseline": 0.20, "p_regressed": 0.45, "p_now": 0.21,
                                        "finding_id": fixed.finding_id, "snapshot_id": "after-v3"}
    assert entries["v3"].status == "new"  # the fix itself is news, not resolved
    assert entries["v2"].rank == 3  # resolved entries follow the open ones
    item = feed_item(entries["v2"], None)
    assert (item["status"], item["resolved_after"]) == ("resolved", "release:v3")


@pytest.mark.parametrize("now", [0.40, 0.33, 0.50])
def test_a_partial_or_wrong_way_move_resolves_nothing(now):
    # 0.40 and 0.33 undo less than half of the +0.25 regression (within 0.125 of 0.20 is needed); 0.50 goes further up
    broke, later = _regression("v2", AFTER_A, 0.20, 0.45), _regression("v3", AFTER_B, 0.45, now)
    assert lifecycle.resolutions([broke, later]) == {}


def test_an_earlier_release_never_resolves_a_later_regression():
    broke, earlier = _regression("v3", AFTER_B, 0.20, 0.45), _regression("v2", AFTER_A, 0.45, 0.20)
    assert lifecycle.resolutions([broke, earlier]) == {}


def test_new_then_persisting_then_closed_once():
    first = [feed_item(e, None) for e in rank([_driver(), _driver("state:invite")], dict(DEFAULT_WEIGHTS))]
    assert [i["status"] for i in first] == ["new", "new"]
    keys = {lifecycle.item_key(i) for i in first}
    second = rank([_driver()], dict(DEFAULT_WEIGHTS), keys)
    assert [e.status for e in second] == ["persisting"]
    gone = lifecycle.closed_items(first, {e.key for e in second})
    assert [(g["finding"]["subject"], g["status"], g["score"]) for g in gone] == [("state:invite", "resolved", 0.0)]
    assert lifecycle.closed_items(gone, set()) == []  # carried once, not again


def test_watch_delivers_a_resolution_once_even_after_the_finding(tmp_path, monkeypatch):
    posted: list[tuple[str, Any]] = []
    monkeypatch.setattr(watch, "post_json", lambda url, body, key: posted.append((key, body)) or 200)
    hook = (Webhook(url="http://127.0.0.1:9/hook"),)
    broke = _regression("v2", AFTER_A, 0.20, 0.45)
    open_item = feed_item(rank([broke], dict(DEFAULT_WEIGHTS))[0], None)
    closed = [feed_item(e, None) for e in rank([broke, _regression("v3", AFTER_B, 0.45, 0.21)], dict(DEFAULT_WEIGHTS))]
    ws = Workspace.open(tmp_path / "ws")
    try:
        watch.deliver(ws, hook, [open_item])
        watch.deliver(ws, hook, closed)  # the v3 finding and the resolution of v2: both new deliveries
        watch.deliver(ws, hook, closed)  # nothing new
    finally:
        ws.close()
    assert len(posted) == 2
    batch = posted[1][1]["insights"]
    assert sorted((i["finding"]["release"], i["status"]) for i in batch) == [("v2", "resolved"), ("v3", "new")]
    assert watch.delivery_key(closed[1]).endswith(":resolved") and posted[0][0] == watch.finding_key(open_item)


def test_slack_notice_names_the_release_that_resolved_it():
    closed = [feed_item(e, None) for e in rank([_regression("v2", AFTER_A, 0.20, 0.45),
                                                _regression("v3", AFTER_B, 0.45, 0.21)], dict(DEFAULT_WEIGHTS))]
    assert watch.slack_text(closed[1]).startswith("*resolved after v3* *#2 regression*")
    assert not watch.slack_text(closed[0]).startswith("*resolved")
