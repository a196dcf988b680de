"""Period-on-period comparisons decided before the periods mature (issue 14): no release markers at all.

The stream of tests/detectors/test_release_early.py (8,000 sign-ups, import_data -> invite_teammate broken
7 days before the data end, 30-day window, 3-day inactivity outcome) with its release markers removed: the
week of the break against the week before is still open, and the change is found from resolved steps.
"""

from __future__ import annotations

import pytest
import yaml

from detectors.runner import run_detectors
from engine.config import load_config
from fixtures.generate_demo import DemoParams
from tests.detectors.release_streams import write_stream

BROKEN = "edge:import_data->invite_teammate"


@pytest.fixture(scope="module", params=["planted", "null"])
def stream(request, tmp_path_factory):
    from detector_builders import snapshots_of

    where = tmp_path_factory.mktemp(request.param)
    base = {"n_users": 8000, "days": 57, "release_day": 50}
    params = DemoParams.null(**base) if request.param == "null" else DemoParams(**base)
    config = write_stream(params, where, 7)
    raw = yaml.safe_load(config.read_text())
    raw["releases"] = []
    config.write_text(yaml.safe_dump(raw))
    cfg = load_config(config)
    snaps = snapshots_of(where / "events.jsonl", cfg, where / "ws")
    return request.param, snaps, run_detectors(snaps, cfg)


def test_open_periods_are_compared(stream):
    kind, snaps, run = stream
    regs = [f for f in run.findings if f.type == "regression"]
    if kind == "null":
        assert regs == []
        return
    broken = [f for f in regs if f.subject == BROKEN]
    assert broken and all(f.predicate == "changed_after" and f.evidence["attribution"] == "period" for f in broken)
    ev = broken[0].evidence
    after = next(s.payload for s in snaps if s.snapshot_id == broken[0].snapshot_id)
    assert not after["mature"] and after["completed"] == 0  # decided from open journeys alone
    assert ev["estimator"] == "resolved_steps_ipcw" and ev["p_after"] < ev["p_before"] and ev["q_value"] <= 0.05
