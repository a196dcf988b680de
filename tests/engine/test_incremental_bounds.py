"""An incremental run reads the stored events of its open journeys' days only, and still gives the full recompute.

engine.journeys: the start events and window rows of the actors with new events are read from a time bound on
(the previous watermark less the late-arrival tolerance, or an earlier start of a journey cut again).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from engine import journeys
from tests.e2e.test_incremental import _ev, _grow, _outputs

_CONFIG = """source: {src}
normalize:
  dedupe_window: 24h
  late_arrival_tolerance: 1h
journeys:
  activation:
    start: sign_up
    window: 10d
    outcomes:
      converted: "event_name = 'paid'"
      dropped: {{inactive_for: 5d}}
"""


def _history() -> list[str]:
    return [_ev("s1", "u1", "sign_up", "2026-01-01T10:00:00Z"),   # open: its 10-day window runs past the next run
            _ev("b1", "u1", "browse", "2026-01-05T10:00:00Z"),    # and no 5-day silence before the watermark
            _ev("s2", "u2", "sign_up", "2026-01-01T11:00:00Z"), _ev("p2", "u2", "paid", "2026-01-02T11:00:00Z"),  # sealed
            _ev("b3", "u3", "browse", "2026-01-02T12:00:00Z"),    # no journey yet: its sign_up comes next run
            _ev("s4", "u4", "sign_up", "2026-01-07T09:00:00Z"),
            _ev("b4", "u4", "browse", "2026-01-08T10:00:00Z")]    # the watermark: sealed before 2026-01-08 09:00


def _timestamps(sql: str) -> list[str]:
    return re.findall(r"ts >= TIMESTAMP '([^']+)'", sql)


@pytest.mark.parametrize(("touch_u1", "starts_from", "rows_from"), [
    # u1 has new events: its stored start (Jan 1) is the bound, so its journey is cut from it again
    (True, "2026-01-01 10:00:00.000000", "2026-01-01 10:00:00.000000"),
    # u1 untouched: the start events are read from the previous watermark less the tolerance, the window rows
    # from the earliest start found (u3's new sign_up)
    (False, "2026-01-08 09:00:00.000000", "2026-01-09 08:00:00.000000"),
])
def test_an_increment_reads_only_the_days_of_its_open_journeys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               touch_u1: bool, starts_from: str, rows_from: str) -> None:
    new = [_ev("s3", "u3", "sign_up", "2026-01-09T08:00:00Z"), _ev("b2", "u2", "browse", "2026-01-09T09:00:00Z"),
           _ev("s5", "u5", "sign_up", "2026-01-09T10:00:00Z")]
    new += [_ev("p1", "u1", "paid", "2026-01-09T11:00:00Z")] if touch_u1 else []
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(_CONFIG.format(src=tmp_path / "data" / "*.jsonl"))
    sql: dict[str, list[str]] = {"starts": [], "rows": []}

    def spy(name: str, make: Any) -> Any:
        def wrapped(*args: Any, **kwargs: Any) -> str:
            sql[name].append(make(*args, **kwargs))
            return sql[name][-1]
        return wrapped

    monkeypatch.setattr(journeys, "_starts_sql", spy("starts", journeys._starts_sql))
    monkeypatch.setattr(journeys, "_rows_sql", spy("rows", journeys._rows_sql))
    inc = _grow(tmp_path, tmp_path / "inc", cfg, [_history(), new], monkeypatch, full=False)
    increment = {name: texts[-1] for name, texts in sql.items()}
    full = _grow(tmp_path, tmp_path / "full", cfg, [_history(), new], monkeypatch, full=True)
    assert inc[1]["incremental"]["mode"] == "incremental" and full[1]["incremental"]["mode"] == "full"
    assert _timestamps(increment["starts"]) == [starts_from] and _timestamps(increment["rows"]) == [rows_from]
    assert not _timestamps(sql["starts"][-1])  # the full recompute reads every start event
    a, b = _outputs(tmp_path / "inc"), _outputs(tmp_path / "full")
    for name in a:
        assert a[name] == b[name], name
    ids = {r[3]: r[2] for r in a["journeys"]}  # every journey is censored (10-day windows): what the data says so far
    known = {r[1]: r[2] for r in a["journey_progress"]}
    assert known[ids["u1"]] == ("converted" if touch_u1 else None) and known[ids["u2"]] == "converted"
    assert set(ids) == {"u1", "u2", "u3", "u4", "u5"}
