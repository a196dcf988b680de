"""The journey rule, case by case: start, steps, outcome, inactivity, window, censoring, self-loops, segments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.engine.conftest import make_config, rows, run_pipeline, write_jsonl

T0 = datetime(2026, 1, 1)
H, D = timedelta(hours=1), timedelta(days=1)


def _iso(at: timedelta) -> str:
    return (T0 + at).strftime("%Y-%m-%dT%H:%M:%SZ")


def _events(spec: list[tuple[str, timedelta]], actor: str = "u", **extra: Any) -> list[dict[str, Any]]:
    return [{"user_id": actor, "event_name": name, "timestamp": _iso(at), **extra} for name, at in spec]


CLOCK = _events([("heartbeat", 60 * D)], actor="clock")  # another actor whose event sets data_end far ahead

# id -> (events of u, expected (outcome, steps, end offset from T0))
CASES: dict[str, tuple[list[tuple[str, timedelta]], tuple[str, list[str], timedelta]]] = {
    "converts": ([("sign_up", 0 * H), ("feature_used", 1 * H), ("subscription_started", 2 * H)],
                 ("converted", ["sign_up", "feature_used"], 2 * H)),
    "events_before_start_ignored": ([("page_view", 0 * H), ("sign_up", 1 * H), ("subscription_started", 2 * H)],
                                    ("converted", ["sign_up"], 2 * H)),
    "inactivity_before_outcome": ([("sign_up", 0 * H), ("feature_used", 1 * H), ("subscription_started", 8 * D + H)],
                                  ("dropped", ["sign_up", "feature_used"], 1 * H + 7 * D)),
    "inactivity_between_steps": ([("sign_up", 0 * H), ("feature_used", 8 * D), ("subscription_started", 8 * D + H)],
                                 ("dropped", ["sign_up"], 7 * D)),
    "trailing_inactivity": ([("sign_up", 0 * H), ("feature_used", 1 * D)], ("dropped", ["sign_up", "feature_used"], 8 * D)),
    "window_end_first": ([("sign_up", 0 * H), ("feature_used", 6 * D), ("feature_used", 12 * D), ("subscription_started", 15 * D)],
                         ("dropped", ["sign_up", "feature_used", "feature_used"], 14 * D)),
    "second_start_is_a_step": ([("sign_up", 0 * H), ("feature_used", 1 * H), ("sign_up", 2 * H), ("subscription_started", 3 * H)],
                               ("converted", ["sign_up", "feature_used", "sign_up"], 3 * H)),
    "outcome_at_start_time": ([("sign_up", 0 * H), ("subscription_started", 0 * H)], ("converted", ["sign_up"], 0 * H)),
}


@pytest.mark.parametrize(("events", "expected"), list(CASES.values()), ids=list(CASES))
def test_journey_rule(con, tmp_path, events, expected) -> None:
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _events(events) + CLOCK), make_config())
    outcome, steps, end = expected
    got = rows(con, "SELECT outcome, censored, n_steps, start_ts, end_ts, journey_id FROM journeys WHERE actor_id = 'u'")
    assert len(got) == 1
    g_outcome, censored, n_steps, start_ts, end_ts, journey_id = got[0]
    assert (g_outcome, censored, end_ts) == (outcome, False, T0 + end)
    assert start_ts == min(T0 + at for name, at in events if name == "sign_up")
    assert [s for (s,) in rows(con, "SELECT state FROM journey_steps WHERE journey_id = ? ORDER BY step", [journey_id])] == steps
    assert n_steps == len(steps)


def test_without_inactivity_outcome_the_window_end_gives_timed_out(con, tmp_path) -> None:
    cfg = make_config(journeys={"j": {"start": "sign_up", "window": "3d", "outcomes": {"converted": "event_name = 'buy'"}}})
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _events([("sign_up", 0 * H), ("view", 1 * D)]) + CLOCK), cfg)
    assert rows(con, "SELECT outcome, end_ts FROM journeys WHERE actor_id = 'u'") == [("timed_out", T0 + 3 * D)]


@pytest.mark.parametrize(("data_end", "censored"), [(13 * D, True), (14 * D, False)], ids=["window_open", "window_closed"])
def test_censoring_depends_on_start_plus_window_only(con, tmp_path, data_end, censored) -> None:
    events = _events([("sign_up", 0 * H), ("feature_used", 1 * H), ("subscription_started", 2 * H)])
    clock = _events([("heartbeat", data_end)], actor="clock")
    run = run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", events + clock), make_config())
    got = rows(con, "SELECT outcome, censored, end_ts FROM journeys WHERE actor_id = 'u'")
    # a censored journey converted inside the data, yet it counts as censored: inclusion never looks at outcomes
    assert got == ([(None, True, T0 + 1 * H)] if censored else [("converted", False, T0 + 2 * H)])
    assert run.journeys.by_journey["activation"].censored == int(censored)


def test_collapse_self_loops(con, tmp_path) -> None:
    cfg = make_config(journeys={"j": {"start": "sign_up", "collapse_self_loops": True,
                                      "outcomes": {"converted": "event_name = 'buy'"}}})
    spec = [("sign_up", 0 * H), ("view", 1 * H), ("view", 2 * H), ("view", 3 * H), ("edit", 4 * H), ("view", 5 * H), ("buy", 6 * H)]
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _events(spec) + CLOCK), cfg)
    assert [s for (s,) in rows(con, "SELECT state FROM journey_steps ORDER BY step")] == ["sign_up", "view", "edit", "view"]
    assert rows(con, "SELECT n_steps FROM journeys WHERE actor_id = 'u'") == [(4,)]


def test_semantic_level_skips_events_without_a_state(con, tmp_path) -> None:
    cfg = make_config(
        states=[{"name": "signup", "when": "event_name = 'sign_up'"},
                {"name": "used", "when": "event_name IN ('feature_used', 'import_data')"}],
        journeys={"j": {"level": "semantic", "start": "signup", "outcomes": {"converted": "event_name = 'buy'"}}})
    spec = [("sign_up", 0 * H), ("page_view", 1 * H), ("feature_used", 2 * H), ("import_data", 3 * H), ("buy", 4 * H)]
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _events(spec) + CLOCK), cfg)
    assert [s for (s,) in rows(con, "SELECT state FROM journey_steps ORDER BY step")] == ["signup", "used", "used"]
    assert rows(con, "SELECT state_semantic FROM events WHERE event_name = 'page_view'") == [(None,)]


def test_segments_from_start_event_then_first_non_null(con, tmp_path) -> None:
    cfg = make_config(segments={"platform": {"column": "platform"}, "plan": {"column": "properties.plan"},
                                "mobile": {"when": "platform IN ('ios', 'android')"}, "country": {"column": "properties.country"}})
    events = [
        {"user_id": "u", "event_name": "sign_up", "timestamp": _iso(0 * H), "platform": "ios"},
        {"user_id": "u", "event_name": "view", "timestamp": _iso(1 * H), "platform": "web", "properties": {"plan": "pro"}},
        {"user_id": "v", "event_name": "sign_up", "timestamp": _iso(0 * H), "platform": "web", "properties": {"plan": "free"}},
    ]
    run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", events + CLOCK), cfg)
    got = dict(rows(con, "SELECT actor_id, segments FROM journeys"))
    assert got["u"] == {"country": "(none)", "mobile": "true", "plan": "pro", "platform": "ios"}
    assert got["v"] == {"country": "(none)", "mobile": "false", "plan": "free", "platform": "web"}


def test_journey_ids_are_content_hashes_of_tenant_journey_actor(tmp_path) -> None:
    import duckdb

    ids = []
    for i, extra in enumerate(([], _events([("unrelated", 2 * H)], actor="zz")), start=1):
        con = duckdb.connect(str(tmp_path / f"{i}.duckdb"))
        run_pipeline(con, write_jsonl(tmp_path / f"{i}.jsonl", _events([("sign_up", 0 * H)]) + extra + CLOCK), make_config())
        ids.append(rows(con, "SELECT journey_id FROM journeys WHERE actor_id = 'u'"))
        con.close()
    assert ids[0] == ids[1] and len(ids[0][0][0]) == 24


CONTRACT = {  # docs/contracts.md "DuckDB tables"
    "events": "tenant_id VARCHAR, actor_id VARCHAR, event_id VARCHAR, event_name VARCHAR, ts TIMESTAMP, received_at TIMESTAMP, "
              "session_id VARCHAR, platform VARCHAR, user_agent VARCHAR, properties JSON, input_order BIGINT, seq BIGINT, "
              "state_raw VARCHAR, state_semantic VARCHAR, state_lifecycle VARCHAR",
    "journeys": "journey VARCHAR, tenant_id VARCHAR, journey_id VARCHAR, actor_id VARCHAR, start_ts TIMESTAMP, end_ts TIMESTAMP, "
                "outcome VARCHAR, censored BOOLEAN, n_steps INTEGER, segments MAP(VARCHAR, VARCHAR)",
    "journey_steps": "journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP, event_id VARCHAR",
    "quarantine": "run_id VARCHAR, source VARCHAR, line BIGINT, reason VARCHAR, raw VARCHAR",
}


def test_tables_match_the_contract_and_hold_every_journey_definition(con, tmp_path) -> None:
    cfg = make_config(journeys={
        "a": {"start": "sign_up", "outcomes": {"converted": "event_name = 'buy'"}},
        "b": {"start": "view", "outcomes": {"edited": "event_name = 'edit'"}, "window": "1d"}})
    spec = [("sign_up", 0 * H), ("view", 1 * H), ("edit", 2 * H), ("buy", 3 * H)]
    run = run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _events(spec) + CLOCK), cfg)
    for table, columns in CONTRACT.items():
        got = ", ".join(f"{name} {kind}" for name, kind, *_ in rows(con, f"DESCRIBE {table}"))
        assert got == columns, table
    assert rows(con, "SELECT journey, outcome, n_steps FROM journeys WHERE actor_id = 'u' ORDER BY journey") == [
        ("a", "converted", 3), ("b", "edited", 1)]
    assert {k: (c.journeys, c.censored) for k, c in run.journeys.by_journey.items()} == {"a": (1, 0), "b": (1, 0)}
    assert rows(con, "SELECT count(*) FROM events WHERE event_name IS NULL OR actor_id IS NULL") == [(0,)]


def test_actor_chunks_give_the_same_tables(tmp_path, monkeypatch) -> None:
    """Big inputs are cut in whole-actor chunks of a sorted stream; the tables must not depend on how many."""
    from engine import journeys
    from tests.engine.conftest import demo_tables_by_chunk_size

    default, tiny = demo_tables_by_chunk_size(tmp_path, monkeypatch, journeys, [
        "SELECT * FROM journeys ORDER BY journey, tenant_id, actor_id",
        "SELECT * FROM journey_steps ORDER BY journey, journey_id, step"])
    assert len(default[0]) == 2400 and len(default[1]) > 10_000
    assert default == tiny
