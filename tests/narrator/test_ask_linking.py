"""Entity linking for questions: relative dates against the data's end, near misses, outcome words, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from narrator.linking import (
    latest_release,
    near_segments,
    outcome_matches,
    resolve_window,
)
from narrator.planner import Vocabulary, plan_question

END = "2026-03-21"


@pytest.mark.parametrize("text, window", [
    ("conversion in the week of 2026-01-19", ("2026-01-19", "2026-01-26")),
    ("what happened last week", ("2026-03-14", "2026-03-22")),
    ("conversion in january", ("2026-01-01", "2026-02-01")),
    ("conversion in december", ("2025-12-01", "2026-01-01")),  # the latest December not after the data's end
    ("what changed last month", ("2026-02-01", "2026-03-01")),
    ("since 2026-02-01", ("2026-02-01", "2026-03-22")),
    ("between 2026-02-01 and 2026-03-01", ("2026-02-01", "2026-03-02")),
    ("what is the conversion rate", None),
])
def test_dates_resolve_against_the_data_end(text: str, window: tuple[str, str] | None) -> None:
    assert resolve_window(text, END) == window


def test_no_data_end_means_no_relative_window() -> None:
    assert resolve_window("last week", None) is None
    assert resolve_window("week of 2026-01-19", None) == ("2026-01-19", "2026-01-26")


@pytest.mark.parametrize("token, outcome, expected", [
    ("approval", "approv", True), ("pass", "pass", True), ("convert", "convert", True),
    ("declin", "declin", True), ("drop", "drop", True), ("pro", "proceed", False), ("app", "approv", False),
])
def test_outcome_words(token: str, outcome: str, expected: bool) -> None:
    assert outcome_matches(token, outcome) is expected


def test_near_misses_link_values_and_yes_no_keys() -> None:
    values = {"platform": ["android", "ios", "web"], "amount_under_5k": ["true", "false"], "plan": ["free", "pro"]}
    assert near_segments("mobile", ("android", "ios", "mobile"), values) == ["platform=android", "platform=ios"]
    assert near_segments("small", ("under", "small"), values) == ["amount_under_5k=true"]
    assert near_segments("desktop", ("windows",), values) == []


def test_latest_release_by_time() -> None:
    assert latest_release({"v2.3": "2026-01-29T00:00:00Z", "v2.10": "2026-03-01T00:00:00Z"}) == "v2.10"
    assert latest_release({}) is None


def _vocab() -> Vocabulary:
    vocab = Vocabulary(conversion_outcome="converted", data_end=END, release_at={"v2.3": "2026-01-29T00:00:00Z"})
    for kind, name in (("outcome", "converted"), ("outcome", "dropped"), ("state", "billing_page"),
                       ("segment_key", "platform"), ("release", "v2.3")):
        vocab.add(kind, name)
    for value in ("android", "ios", "web"):
        vocab._add_segment_value("platform", value)
    vocab.terms.sort(key=lambda t: (-len(t.key), t.kind, t.name))
    return vocab


@pytest.mark.parametrize("question, intents, extra", [
    ("What is the conversion rate of mobile users?", {"rate"}, {"segments": ("platform=android", "platform=ios")}),
    ("Which platform converts worse?", {"compare", "rate"}, {"segments": ("platform",)}),
    ("What got worse after the last release?", {"change"}, {"releases": ("v2.3",)}),
    ("Where do users drop off?", {"dropoff"}, {}),
    ("What matters most for converting?", {"driver"}, {"outcomes": ("converted",)}),
    ("What is the drop-off rate?", {"rate", "dropoff"}, {"outcomes": ("dropped",)}),
])
def test_planner_intents_and_links(question: str, intents: set[str], extra: dict) -> None:
    plan = plan_question(question, _vocab())
    assert intents <= set(plan.intents)
    assert "compare" not in plan.intents or "compare" in intents
    for key, value in extra.items():
        assert getattr(plan, key) == value


def test_planner_notes_near_misses_and_flags_forecasts_and_unknown_words() -> None:
    mobile = plan_question("conversion rate of mobile users", _vocab())
    assert mobile.notes == ('No segment is named "mobile"; read as "platform=android", "platform=ios".',)
    assert plan_question("What will conversion be next month?", _vocab()).future == "next month"
    assert plan_question("What is the revenue per user?", _vocab()).unknown == ("revenue",)
    assert plan_question("What is the conversion rate?", _vocab()).unknown == ()


def test_ask_cache_rereads_after_a_run_changes_the_workspace(tmp_path: Path) -> None:
    """engine.app.asking: the same Prepared object until the database file changes, then a fresh read."""
    import os

    from engine.app import pipeline
    from engine.app.asking import AskCache
    from engine.workspace import DB_NAME

    ws = tmp_path / "ws"
    pipeline.run(config_path=str(Path(__file__).resolve().parents[2] / "fixtures" / "demo.yaml"),
                 workspace=str(ws), quiet=True)
    cache = AskCache(str(ws))
    first = cache.prepared()
    assert cache.prepared() is first
    assert "25.5%" in cache.ask("what is the overall conversion rate?")["answer"]
    db = ws / DB_NAME  # a run rewrites the database file: a new mtime
    os.utime(db, ns=(db.stat().st_atime_ns, db.stat().st_mtime_ns + 1_000_000_000))
    assert cache.prepared() is not first
