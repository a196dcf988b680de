"""Path quality from journeys still in progress (issue 14): found before a window has passed, none on null.

Stream: the demo chain, 2,000 sign-ups over 36 days, a 30-day window and a 3-day inactivity outcome, so
about 83 % of journeys are censored. The planted demo makes create_project → import_data a quick route to
conversion. The completed-only rule sees the first 6 days of sign-ups; `path_estimates` (IPCW sequence totals
and medians, engine.path_estimate_totals) see every journey whose end is known. The completed-only detector is
run on the same snapshots with `path_estimates` taken out. (The journey-by-journey recount of the blocks,
engine.resolved, is held equal to the snapshot in tests/engine/test_resolved_recount.py.)
"""

from __future__ import annotations

import pytest

from detectors import path_quality
from detectors.runner import run_detectors
from detectors.synthetic import chain_payload
from detectors.view import SnapView
from engine.snapshot import Snapshot
from engine.snapshot_estimates import NOT_YET
from tests.detectors.release_streams import planted_or_null

PATH_TYPES = ("fast_path", "slow_path")


@pytest.fixture(scope="module", params=["planted", "null"])
def young(request, tmp_path_factory):
    kw = {"n_users": 2000, "days": 36, "release_day": 30, "seed": 7}
    where = tmp_path_factory.mktemp(request.param)
    snaps, cfg = planted_or_null(request.param, where, 6, **kw)
    return request.param, snaps, cfg, where


def _paths(snaps: list, cfg) -> list:
    return [f for f in run_detectors(snaps, cfg).findings if f.type in PATH_TYPES]


def _completed_only(snaps: list) -> list:
    return [Snapshot.from_payload({k: v for k, v in s.payload.items() if k != "path_estimates"}) for s in snaps]


def test_planted_fast_path_found_from_estimates_before_the_completed_rule_can(young):
    kind, snaps, cfg, _ = young
    found = _paths(snaps, cfg)
    if kind == "null":
        assert found == []  # nothing planted: silent
        return
    assert found and {f.type for f in found} == {"fast_path"}
    assert all(f.subject.endswith("create_project>import_data") for f in found)
    assert _paths(_completed_only(snaps), cfg) == []  # the completed journeys alone cannot tell yet


def test_null_stream_stays_silent_with_and_without_estimates(young):
    kind, snaps, cfg, _ = young
    if kind == "null":
        assert _paths(snaps, cfg) == [] and _paths(_completed_only(snaps), cfg) == []


def test_evidence_names_the_estimator_and_the_effective_sizes(young):
    kind, snaps, cfg, _ = young
    base = next(s for s in snaps if s.scope == "all")
    block = base.payload["path_estimates"]
    for f in _paths(snaps, cfg):
        ev = f.evidence
        entry = next(e for e in block["top"] if "path:" + ">".join(e["path"]) == f.subject and e["outcome"] == ev["outcome"])
        assert ev["estimator"] == path_quality.ESTIMATOR and ev["test"] == path_quality.WALD
        assert ev["n_eff"] == entry["sequence_n_eff"] and ev["n_eff_rest"] == entry["rest_n_eff"]
        assert ev["count"] == round(ev["n_eff"]) and ev["n_rest"] == round(ev["n_eff_rest"])
        assert f.n == ev["count"] + ev["n_rest"] and ev["count"] >= 30
        assert ev["conversion_rate"] == entry["conversion_rate"] and ev["share"] == entry["sequence_share"]
        assert ev["resolved_path"] == entry["sequence_resolved"] <= ev["complete"] + ev["resolved_in_progress"]
        assert ev["complete"] + ev["resolved_in_progress"] + ev["unresolved"] == ev["journeys"] == base.payload["journeys"]
        assert ev["resolved_in_progress"] > 2 * ev["complete"]  # most of the evidence comes from journeys in progress
        assert ev["class_median_duration_s"] == base.payload["duration_estimates"]["by_class"]["converted"]["median_s"]


def _view(censored: int, **blocks) -> SnapView:
    payload = chain_payload({"a": {"b": 0.5, "converted": 0.5}, "b": {"converted": 0.3, "dropped": 0.7}},
                            journeys=400, start="a")
    return SnapView(Snapshot.from_payload({**payload, "censored": censored, **blocks}))


def test_not_estimable_yet_gives_no_path_finding():
    note = {"path_estimates": {"top": [], "resolved": 0, "journeys": 400, "note": NOT_YET}}
    young_view = _view(400, **note)
    assert path_quality.uses_estimates(young_view) and path_quality.paths_of(young_view) == []
    assert not path_quality.uses_estimates(_view(0, **note))  # nothing censored: the completed-only counts
