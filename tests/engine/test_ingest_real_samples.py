"""Real files in their original shapes, with no config: the committed samples always, the full files when present.

The samples under fixtures/real/ travel with the repository (licences and
attribution in fixtures/real/README.md), so a fresh clone tests on real data;
the full files in ../shared/datasets/ are tested too when that folder sits
beside the repository (CI), and skipped with the reason when it does not.
Expected counts are computed from the files themselves, not typed in.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.engine.conftest import rows
from tests.engine.test_ingest_formats import conversion, failures, read

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "datasets"
AITA_FULL = SHARED / "appintheair_onboarding" / "train.csv"
OTTO_FULL = SHARED / "otto_sessions_sample" / "train.jsonl"


def _ga4_counts(path: Path) -> tuple[int, int, Counter[str]]:
    with path.open() as handle:
        body = list(csv.DictReader(handle))
    return len(body), len({r["user_pseudo_id"] for r in body}), Counter(r["event_name"] for r in body)


def _otto_counts(path: Path) -> tuple[int, Counter[str]]:
    sessions = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return len(sessions), Counter(e["type"] for s in sessions for e in s["events"])


def _check_aita(path: Path) -> None:
    n_rows, n_users, names = _ga4_counts(path)
    con, stats, cfg = read(str(path))
    assert "GA4 / Firebase BigQuery export" in stats.notes[0] and "epoch microseconds" in stats.notes[0]
    assert (stats.events_read, stats.quarantined) == (n_rows, 0)
    assert rows(con, "SELECT count(DISTINCT actor_id), min(year(ts)), max(year(ts)) FROM events") == [(n_users, 2018, 2018)]
    assert dict(rows(con, "SELECT event_name, count(*) FROM events GROUP BY 1")) == dict(names)
    assert conversion(cfg) == "event_name = 'passed'"
    assert failures(cfg) == ["event_name = 'lost'"] and cfg.journeys[0].conversion == "passed"
    assert cfg.journeys[0].start == "onboarding_welcome_screen"
    assert cfg.journeys[0].window_s <= 86400 / 2, "a one-day log must not be censored whole"


def _check_otto(path: Path) -> None:
    sessions, types = _otto_counts(path)
    con, stats, cfg = read(str(path))
    assert "one line per session" in stats.notes[0] and "epoch milliseconds" in stats.notes[0]
    assert (stats.events_read, stats.quarantined) == (sum(types.values()), 0)
    assert rows(con, "SELECT count(DISTINCT actor_id), min(year(ts)) FROM events") == [(sessions, 2022)]
    assert dict(rows(con, "SELECT event_name, count(*) FROM events GROUP BY 1")) == dict(types)
    assert conversion(cfg) == "event_name = 'orders'"


def test_appintheair_sample_ga4_csv() -> None:
    _check_aita(REAL / "appintheair_train_first_1000_users.csv")


def test_otto_sessions_sample() -> None:
    _check_otto(REAL / "otto_train_20_sessions.jsonl")


def test_bpi2012_sample_as_a_pm4py_csv() -> None:
    path = REAL / "bpi2012_first_200_cases.pm4py.csv"
    with path.open() as handle:
        body = list(csv.DictReader(handle))
    con, stats, cfg = read(str(path))
    assert "pm4py" in stats.notes[0] and (stats.events_read, stats.quarantined) == (len(body), 0)
    assert rows(con, "SELECT count(DISTINCT actor_id), min(year(ts)), max(year(ts)) FROM events") == [
        (len({r["case:concept:name"] for r in body}), 2011, 2012)]
    assert rows(con, "SELECT count(*) FROM events WHERE properties->>'case:AMOUNT_REQ' IS NULL") == [(0,)]
    assert cfg.journeys[0].start == "A_SUBMITTED"
    assert conversion(cfg) in ("event_name = 'A_APPROVED'", "event_name = 'A_ACTIVATED'")  # they always come together


@pytest.mark.skipif(not AITA_FULL.exists(), reason=f"full App in the Air log not found at {AITA_FULL} (../shared absent)")
def test_appintheair_full_train_csv() -> None:
    _check_aita(AITA_FULL)


@pytest.mark.skipif(not OTTO_FULL.exists(), reason=f"OTTO train.jsonl not found at {OTTO_FULL} (../shared absent)")
def test_otto_original_file() -> None:
    _check_otto(OTTO_FULL)
