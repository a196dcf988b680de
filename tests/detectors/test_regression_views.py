"""detectors.regression's edge test reads each snapshot's resolved steps once per view, not once per edge."""

from __future__ import annotations

from detectors import regression
from detectors.view import SnapView
from tests.detectors.detector_builders import snap

PROBS = {"sign_up": {"a": 0.6, "b": 0.4}, "a": {"b": 0.5, "converted": 0.5}, "b": {"converted": 0.3, "dropped": 0.7}}


def _view(shares: list[dict]) -> SnapView:
    s = snap(PROBS, journeys=400)
    return SnapView(type(s).from_payload({**s.payload, "mature": False, "resolved_shares": shares}))


def test_each_view_is_resolved_once_and_shares_are_read_by_edge():
    rows = [{"from": "sign_up", "to": "a", "count": 30, "share": 0.6, "se": 0.05},
            {"from": "sign_up", "to": "b", "count": 20, "share": 0.4, "se": 0.04}]
    before, after = _view(rows), _view([{**rows[0], "share": 0.5}, {**rows[1], "share": 0.5}])
    assert regression.resolved(before) is regression.resolved(before)
    assert regression.resolved(regression.resolved(before)) is regression.resolved(before)
    (f1, n1, f2, n2), test = regression.edge_test(before, after, "sign_up", "a")
    assert (f1, n1, f2, n2) == (0.6, 50, 0.5, 50)
    assert test is not None and test[0] < 0  # the share fell
    (g1, _, g2, _), _ = regression.edge_test(before, after, "sign_up", "b")
    assert (g1, g2) == (0.4, 0.5)
    (h1, _, h2, _), _ = regression.edge_test(before, after, "a", "b")  # no resolved row for it: share 0
    assert (h1, h2) == (0.0, 0.0)
