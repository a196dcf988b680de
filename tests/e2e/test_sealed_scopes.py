"""Sealed period snapshots are reused by later runs only while their journeys are unchanged (engine.sealed_scopes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from engine.app import pipeline
from engine.incremental import FULL_ENV
from engine.sealed_scopes import step_digests
from engine.step_arrays import StepArrays
from engine.workspace import Workspace

# a 3-day window, ISO-week periods; a 30-day late tolerance lets a new file reach back into a sealed week
_CFG = """source: {src}
normalize:
  late_arrival_tolerance: 30d
journeys:
  activation:
    start: sign_up
    window: 3d
    outcomes:
      converted: "event_name = 'paid'"
      dropped: {{inactive_for: 1d}}
snapshots:
  period: 7d
"""


def _ev(eid: str, user: str, name: str, ts: str) -> str:
    return json.dumps({"event_id": eid, "user_id": user, "event_name": name, "timestamp": ts})


def _history() -> list[str]:
    """Sign-ups in the weeks of 2025-12-29, 2026-01-05 and 2026-01-12; the data ends on 2026-01-20."""
    rows = []
    for week, day in enumerate(("2026-01-01", "2026-01-06", "2026-01-13")):
        for i in range(8):
            user = f"w{week}u{i}"
            rows.append(_ev(f"s{week}{i}", user, "sign_up", f"{day}T1{i}:00:00Z"))
            rows.append(_ev(f"b{week}{i}", user, "browse", f"{day}T1{i}:30:00Z"))
            if i % 3 == 0:
                rows.append(_ev(f"p{week}{i}", user, "paid", f"{day}T1{i}:45:00Z"))
    rows.append(_ev("end", "late_user", "sign_up", "2026-01-20T12:00:00Z"))
    return rows


def _source(tmp_path: Path) -> tuple[Path, Path]:
    """A source folder holding the history file, and the config reading it."""
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_CFG.format(src=data / "*.jsonl"))
    (data / "a.jsonl").write_text("\n".join(_history()) + "\n")
    return data, cfg


def _run(ws: Path, cfg: Path, full: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv(FULL_ENV, "1" if full else "0")
    return pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)


def _period_payloads(ws: Path, input_hash: str) -> dict[str, str]:
    """window start -> payload of the run with `input_hash`'s period snapshots."""
    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        return dict(con.execute("SELECT payload->>'$.window.start', payload::VARCHAR FROM snapshots "
                                "WHERE scope = 'period' AND payload->>'input_hash' = ?", [input_hash]).fetchall())
    finally:
        con.close()


def _latest_hash(ws: Path) -> str:
    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        return con.execute("SELECT payload->>'input_hash' FROM snapshots WHERE scope = 'all' "
                           "ORDER BY window_end DESC LIMIT 1").fetchall()[0][0]
    finally:
        con.close()


def test_unchanged_sealed_weeks_are_reused_and_a_changed_one_is_computed_again(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data, cfg = _source(tmp_path)
    first = _run(tmp_path / "inc", cfg, False, monkeypatch)
    # weeks of 12-29 and 01-05 end at least 3 days before the data end: sealed; the week of 01-12 is not
    assert first["incremental"]["snapshots_sealed"] == 2 and first["incremental"]["snapshots_reused"] == 0
    # a late event inside the sealed week of 12-29 (accepted: within the 30-day tolerance) and a new day
    (data / "b.jsonl").write_text("\n".join([_ev("late", "w0u1", "paid", "2026-01-01T11:50:00Z"),
                                             _ev("new", "n1", "sign_up", "2026-01-21T09:00:00Z")]) + "\n")
    second = _run(tmp_path / "inc", cfg, False, monkeypatch)
    assert second["incremental"]["mode"] == "incremental"
    assert second["incremental"]["snapshots_sealed"] == 2
    assert second["incremental"]["snapshots_reused"] == 1  # the week of 01-05; 12-29 changed: computed again
    once = _run(tmp_path / "once", cfg, True, monkeypatch)  # both files at once, nothing reused
    assert once["incremental"]["snapshots_reused"] == 0
    got, want = _period_payloads(tmp_path / "inc", _latest_hash(tmp_path / "inc")), \
        _period_payloads(tmp_path / "once", _latest_hash(tmp_path / "once"))
    assert got == want and len(got) == 4
    week0 = json.loads(got[min(got)])
    assert week0["outcome_counts"]["converted"] == 4  # w0u0, w0u3, w0u6 and the late payer w0u1
    assert "sealed_key" in week0 and "sealed_key" not in json.loads(got[max(got)])


def test_a_second_run_on_the_same_input_reuses_every_sealed_snapshot_row(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, cfg = _source(tmp_path)
    _run(tmp_path / "ws", cfg, False, monkeypatch)
    before = _period_payloads(tmp_path / "ws", _latest_hash(tmp_path / "ws"))
    again = _run(tmp_path / "ws", cfg, False, monkeypatch)
    assert again["incremental"]["snapshots_reused"] == 2
    assert _period_payloads(tmp_path / "ws", _latest_hash(tmp_path / "ws")) == before  # same ids, same bytes


def _steps(jix: list[int], state: list[int], ts: list[int]) -> StepArrays:
    return StepArrays(jix=np.array(jix, np.int64), state=np.array(state, np.int64), names=pa.array(["a", "b", "c"]),
                      ts=np.array(ts, np.int64), size=3, journey_ids=pa.array(["j0", "j1", "j2"]))


def test_step_digest_sees_order_states_and_times() -> None:
    base = step_digests(_steps([0, 0, 1, 1], [0, 1, 1, 2], [10, 20, 10, 20]))
    assert base[2] == 0 and base[0] != base[1] and base[0] != 0
    same = step_digests(_steps([0, 0, 1, 1], [0, 1, 1, 2], [10, 20, 10, 20]))
    assert np.array_equal(base, same)
    swapped = step_digests(_steps([0, 0, 1, 1], [1, 0, 1, 2], [10, 20, 10, 20]))  # j0 visits b then a
    later = step_digests(_steps([0, 0, 1, 1], [0, 1, 1, 2], [10, 21, 10, 20]))     # one µs later
    renamed = step_digests(_steps([0, 0, 1, 1], [0, 2, 1, 2], [10, 20, 10, 20]))   # b became c
    null_state = step_digests(_steps([0, 0, 1, 1], [0, -1, 1, 2], [10, 20, 10, 20]))
    for other in (swapped, later, renamed, null_state):
        assert other[0] != base[0] and other[1] == base[1]
