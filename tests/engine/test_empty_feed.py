"""An empty feed says why (issue #15): the OTTO sample (20 sessions, 10 still open) run with no config gives a
feed that names the journey and its conversion, the completed and open journeys, the detectors' floors and
what more data would reveal, in text, Markdown and HTML; the sample size behind it is the power maths'."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.registry import describe
from engine.app import pipeline, views
from engine.power import journeys_needed, minimum_detectable_change

OTTO = Path(__file__).resolve().parents[2] / "fixtures" / "real" / "otto_train_20_sessions.jsonl"


@pytest.mark.parametrize("p1", [0.02, 0.3, 0.5, 0.93])
def test_journeys_needed_is_the_smallest_group_size_that_detects_the_change(p1: float) -> None:
    n = journeys_needed(p1, 0.10, 0.05)
    assert n is not None
    assert minimum_detectable_change(p1, n, n, 0.05)[0] <= 0.10 + 1e-9
    assert minimum_detectable_change(p1, n - 1, n - 1, 0.05)[0] > 0.10
    assert journeys_needed(p1, 1.5, 0.05) is None  # no change that size fits in [0, 1]


@pytest.fixture(scope="module")
def otto(tmp_path_factory: pytest.TempPathFactory) -> str:
    ws = str(tmp_path_factory.mktemp("otto") / "ws")
    pipeline.run(str(OTTO), workspace=ws, quiet=True)
    return ws


def test_otto_sample_feed_says_what_was_measured_and_why_nothing_shows(otto: str) -> None:
    assert views.feed_items(otto) == []
    snap = next(s for s in views.snapshots(otto) if s["scope"] == "all")
    won = views.snapshot_payload(otto, snap["snapshot_id"], None)["outcome_counts"]["orders"]
    rate = won / snap["completed"]
    floors = [max(d["thresholds"].get("min_n", d["thresholds"].get("min_count", 0)), 20) for d in describe()]
    text = " ".join(views.feed(otto, fmt="text").split())  # unwrapped
    assert 'starts at "clicks" and ends in "orders" (the conversion) or "dropped"' in text
    assert f"{snap['journeys']} journeys: {snap['completed']} completed ({won} reached \"orders\", {100 * rate:.1f}%), " \
           f"{snap['censored']} still open when the data ends on 2022-08-28" in text
    assert snap["censored"] > 0 and snap["completed"] < min(floors)
    assert f"Too few to test: the detectors need at least {min(floors)} (path_quality) to {max(floors)}" in text
    assert f"about {2 * journeys_needed(rate, 0.10, 0.05):,} completed journeys would reveal a 10-point change" in text
    # OTTO's sessions span weeks: the inferred inactivity (2w from the gaps) is capped at the 1w window
    assert 'ends in "orders" (the conversion) or "dropped" (1w without an event), within 1w of its start' in text
    md, page = views.feed(otto, fmt="md"), views.feed(otto, fmt="html")
    assert "- 20 journeys: 10 completed" in md and "Too few to test" in md
    assert "Too few to test" in page and "starts at &quot;clicks&quot;" in page


def test_api_status_carries_the_same_explanation_as_the_text_feed(otto: str) -> None:
    """The web page shows /api/status when the feed is empty: the same sentences and numbers as the text feed."""
    from fastapi.testclient import TestClient

    from engine.app.api import create_app

    with TestClient(create_app(otto), base_url="http://127.0.0.1") as client:  # the guard serves loopback names
        body = client.get("/api/status").json()
    text = " ".join(views.feed(otto, fmt="text").split())
    assert body["title"] == "No insights yet" and body["lines"]
    assert all(" ".join(line.split()) in text for line in body["lines"])
    (row,) = body["journeys"]
    assert (row["journey"], row["start"], row["conversion"]) == ("journey", "clicks", "orders")
    assert row["completed"] + row["censored"] == row["journeys"] == 20
