"""The real BPI Challenge 2012 loan log end to end through `journeygraph run` with the committed config.

The absorbing chain's outcome probabilities from the submitted state must equal
the published case labels (case_outcomes.csv) over the same mature cohort: the
empirical chain conserves flow, so B[start, o] is exactly the observed share.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from engine.config import load_config
from tests.e2e.conftest import ROOT, run_cli

CONFIG = ROOT / "fixtures" / "bpi2012.yaml"
CSV = Path(load_config(CONFIG).resolve_source()).parent / "case_outcomes.csv"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def bpi_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    if not CSV.exists():
        pytest.skip(f"BPI 2012 full log not found at {CSV.parent} (the shared datasets folder beside the repo); "
                    "the committed sample fixtures/real/ is tested instead")
    ws = tmp_path_factory.mktemp("bpi") / "ws"
    summary = json.loads(run_cli("run", "-c", str(CONFIG), "-w", str(ws), "--format", "json").stdout)
    return ws, summary


def test_bpi_runs_end_to_end(bpi_run: tuple[Path, dict]) -> None:
    _, summary = bpi_run
    assert (summary["events_read"], summary["accepted"], summary["actors"]) == (262_200, 262_200, 13_087)
    assert summary["findings"] > 0 and summary["insights"] > 0


def test_outcome_shares_from_submitted_match_the_case_labels(bpi_run: tuple[Path, dict]) -> None:
    ws, _ = bpi_run
    snap = json.loads(run_cli("snapshot", "-w", str(ws), "--format", "json").stdout)
    start = next(s for s in snap["states"] if s["state"] == "A_SUBMITTED")
    con = duckdb.connect(str(ws / "journeygraph.duckdb"), read_only=True)
    mature = {r[0] for r in con.execute("SELECT actor_id FROM journeys WHERE NOT censored").fetchall()}
    con.close()
    window = timedelta(days=90)
    counts: dict[str, int] = {}
    with CSV.open() as fh:
        for row in csv.DictReader(fh):
            if row["case_id"] not in mature:
                continue
            decided = row["outcome"] in ("approved", "declined", "cancelled") and \
                _ts(row["outcome_timestamp"]) <= _ts(row["first_event_timestamp"]) + window
            label = row["outcome"] if decided else "stalled"
            counts[label] = counts.get(label, 0) + 1
    total = sum(counts.values())
    assert total == snap["journeys"] - snap["censored"]
    for outcome in ("approved", "declined", "cancelled"):
        assert start["absorption"][outcome] == pytest.approx(counts[outcome] / total, abs=2e-6), outcome
