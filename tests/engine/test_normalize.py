"""Normalisation: exact counts on the hand-made dirty stream, identity stitching, order invariance, and each rule."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from engine.config import load_config
from tests.engine.conftest import FIXTURES, make_config, rows, run_pipeline, write_jsonl

DIRTY = FIXTURES / "dirty"


@pytest.fixture(scope="module")
def dirty_cfg():
    return load_config(DIRTY / "journeygraph.yaml")


def _conversion(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    return con.execute("SELECT count(*) FILTER (WHERE outcome = 'converted'), count(*) FROM journeys WHERE NOT censored").fetchone()


def test_dirty_stream_counts_every_row_exactly(con, dirty_cfg) -> None:
    run = run_pipeline(con, DIRTY / "events.jsonl", dirty_cfg)
    s = run.summary
    assert (s.events_read, s.accepted, s.quarantined, s.duplicates, s.bots_filtered, s.late_rejected) == (338, 23, 9, 2, 303, 1)
    assert s.quarantined_by_reason == {"not_json": 3, "missing_timestamp": 1, "bad_timestamp": 2,
                                       "missing_event_name": 2, "missing_actor": 1}
    assert s.events_read == s.accepted + s.quarantined + s.duplicates + s.bots_filtered + s.late_rejected
    assert s.actors == 8 and s.identities_merged == 1
    # quarantine keeps line numbers (1-based, blank lines counted as lines) and the raw text
    assert rows(con, "SELECT line, reason FROM quarantine ORDER BY line") == [
        (328, "not_json"), (329, "not_json"), (330, "not_json"), (331, "missing_timestamp"), (332, "bad_timestamp"),
        (333, "bad_timestamp"), (334, "missing_event_name"), (335, "missing_event_name"), (336, "missing_actor")]
    assert rows(con, "SELECT raw FROM quarantine WHERE line = 329") == [("this is not json at all",)]
    assert dict(rows(con, "SELECT reason, count(*) FROM rejected_events GROUP BY ALL")) == {"duplicate": 2, "bot": 303, "late_arrival": 1}


def test_dirty_stream_stitches_the_anonymous_user_into_one_journey(con, dirty_cfg) -> None:
    run_pipeline(con, DIRTY / "events.jsonl", dirty_cfg)
    assert rows(con, "SELECT DISTINCT actor_id FROM events WHERE event_name = 'identify' OR actor_id IN ('a3')") == [("u3",)]
    steps = rows(con, """SELECT s.state FROM journey_steps s JOIN journeys j USING (journey_id)
                         WHERE j.actor_id = 'u3' ORDER BY s.step""")
    assert [s for (s,) in steps] == ["sign_up", "feature_used", "identify"]
    assert rows(con, "SELECT outcome, segments['platform'] FROM journeys WHERE actor_id = 'u3'") == [("converted", "android")]


def test_dirty_stream_parses_offsets_and_epoch_ms_and_reorders(con, dirty_cfg) -> None:
    run_pipeline(con, DIRTY / "events.jsonl", dirty_cfg)
    assert rows(con, "SELECT event_name, ts FROM events WHERE actor_id = 'u4' ORDER BY seq") == [
        ("sign_up", datetime(2026, 3, 3, 9)), ("feature_used", datetime(2026, 3, 3, 10)),
        ("import_data", datetime(2026, 3, 3, 11)), ("subscription_started", datetime(2026, 3, 4, 15))]
    assert rows(con, "SELECT ts FROM events WHERE actor_id = 'u5' ORDER BY seq LIMIT 2") == [
        (datetime(2026, 3, 5, 9),), (datetime(2026, 3, 5, 10),)]


def test_dirty_stream_gives_the_same_journeys_as_the_clean_stream(tmp_path, dirty_cfg) -> None:
    results = []
    for name in ("events.jsonl", "clean.jsonl"):
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
        run_pipeline(con, DIRTY / name, dirty_cfg)
        results.append((_conversion(con), rows(con, """SELECT tenant_id, actor_id, outcome, censored, n_steps, start_ts, end_ts
                                                        FROM journeys ORDER BY ALL""")))
        con.close()
    (dirty_rate, dirty_journeys), (clean_rate, clean_journeys) = results
    assert dirty_rate == clean_rate == (4, 6)
    assert dirty_journeys == clean_journeys


def _shuffled(tmp_path: Path, seed: int) -> Path:
    lines = (DIRTY / "events.jsonl").read_text().splitlines()
    random.Random(seed).shuffle(lines)
    return write_jsonl(tmp_path / f"shuffled-{seed}.jsonl", lines)


EVENT_COLUMNS = "tenant_id, actor_id, event_id, event_name, ts, session_id, properties::VARCHAR"


@pytest.mark.parametrize("seed", [1, 7, 2026], ids=lambda s: f"seed{s}")
def test_shuffling_rows_changes_nothing_but_tie_order(tmp_path, dirty_cfg, seed) -> None:
    base = duckdb.connect(str(tmp_path / "base.duckdb"))
    shuf = duckdb.connect(str(tmp_path / "shuffled.duckdb"))
    a = run_pipeline(base, DIRTY / "events.jsonl", dirty_cfg)
    path = _shuffled(tmp_path, seed)
    b = run_pipeline(shuf, path, dirty_cfg)
    for field in ("events_read", "accepted", "quarantined", "duplicates", "bots_filtered", "late_rejected", "actors"):
        assert getattr(a.summary, field) == getattr(b.summary, field), field
    assert a.summary.quarantined_by_reason == b.summary.quarantined_by_reason
    query = f"SELECT {EVENT_COLUMNS} FROM events ORDER BY ALL"
    assert rows(base, query) == rows(shuf, query)
    # seq is identical except inside groups of equal timestamps
    untied = """SELECT actor_id, seq, event_name FROM events e
                WHERE (SELECT count(*) FROM events f WHERE f.tenant_id = e.tenant_id AND f.actor_id = e.actor_id AND f.ts = e.ts) = 1
                ORDER BY ALL"""
    assert rows(base, untied) == rows(shuf, untied)
    # journeys are identical; u6's steps depend on its tie order (where sign_up falls), its outcome does not
    jq = "SELECT journey_id, outcome, censored, n_steps, start_ts, end_ts, segments FROM journeys WHERE actor_id <> 'u6' ORDER BY ALL"
    assert rows(base, jq) == rows(shuf, jq)
    u6 = "SELECT journey_id, outcome, start_ts, end_ts FROM journeys WHERE actor_id = 'u6'"
    assert rows(base, u6) == rows(shuf, u6)
    # u6's three events share one timestamp: they keep the (shuffled) input order
    names = [n for n in ("sign_up", "import_data", "feature_used")]
    positions = {n: i for i, line in enumerate(path.read_text().splitlines()) for n in names
                 if '"u6"' in line and f'"{n}"' in line}
    expected = sorted(names, key=positions.__getitem__)
    got = [n for (n,) in rows(shuf, "SELECT event_name FROM events WHERE actor_id = 'u6' AND event_name <> 'subscription_started' ORDER BY seq")]
    assert got == expected
    base.close()
    shuf.close()


def _ev(user: str, name: str, ts: str, **extra):
    return {"user_id": user, "event_name": name, "timestamp": ts, **extra}


def test_dedupe_window_keeps_a_repeat_outside_the_window_with_a_new_id(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        _ev("u", "sign_up", "2026-01-01T00:00:00Z", event_id="x"),
        _ev("u", "sign_up", "2026-01-01T05:00:00Z", event_id="x"),   # within 24h: duplicate
        _ev("u", "sign_up", "2026-01-03T00:00:00Z", event_id="x"),   # 2 days later: a new event
    ])
    run = run_pipeline(con, path, make_config(normalize={"dedupe_window": "24h"}))
    assert run.summary.duplicates == 1
    assert rows(con, "SELECT event_id FROM events ORDER BY seq") == [("x",), ("x#3",)]


@pytest.mark.parametrize(("per_minute", "filtered"), [(120, 0), (121, 121)], ids=["at_ceiling", "over_ceiling"])
def test_rate_ceiling_filters_all_of_a_hammering_actors_events(con, tmp_path, per_minute, filtered) -> None:
    burst = [_ev("h", "tick", f"2026-01-01T00:00:{i % 60:02d}.{i:03d}Z", n=i) for i in range(per_minute)]
    later = [_ev("h", "tick", "2026-01-02T00:00:00Z"), _ev("human", "tick", "2026-01-01T00:00:00Z")]
    run = run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", burst + later),
                       make_config(normalize={"bots": {"max_events_per_minute": 120, "user_agent_patterns": []}}))
    assert run.summary.bots_filtered == (filtered + 1 if filtered else 0)
    assert run.summary.accepted == per_minute + 2 - run.summary.bots_filtered


def _burst(start_s: float, count: int, spacing_s: float) -> list[dict]:
    """`count` events of actor 'b', `spacing_s` apart, starting `start_s` seconds after 00:00:00 (ms precision)."""
    base = datetime(2026, 1, 1)
    return [_ev("b", "tick", (base + timedelta(seconds=start_s + i * spacing_s)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", n=i)
            for i in range(count)]


@pytest.mark.parametrize(("events", "is_bot"), [
    # 150 events/min from 00:00:30 to 00:01:29.6: at most 75 in either calendar minute, 150 in one 60 s window
    (_burst(30, 150, 0.4), True),
    # 121 events in exactly 59.9 s across a minute boundary: over the limit of 120
    (_burst(45, 121, 59.9 / 120), True),
    # 121 events spread over exactly 60 s: the 121st falls outside [t, t + 60 s), never more than 120 inside
    (_burst(45, 121, 0.5), False),
    # 150 events, but only 100 in any minute (1 every 0.6 s)
    (_burst(0, 150, 0.6), False),
], ids=["150_per_min_straddling_a_boundary", "121_in_59.9s", "121_in_exactly_60s", "100_per_min_sustained"])
def test_rate_ceiling_is_a_sliding_60_second_window(con, tmp_path, events, is_bot) -> None:
    human = [_ev("human", "tick", "2026-01-01T00:00:00Z")]
    run = run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", events + human),
                       make_config(normalize={"bots": {"max_events_per_minute": 120, "user_agent_patterns": []}}))
    assert run.summary.bots_filtered == (len(events) if is_bot else 0)
    assert rows(con, "SELECT DISTINCT actor_id FROM events ORDER BY ALL") == ([("human",)] if is_bot else [("b",), ("human",)])


def test_user_agent_patterns_are_case_insensitive(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        _ev("a", "x", "2026-01-01T00:00:00Z", user_agent="UptimeRobot/2.0"),
        _ev("b", "x", "2026-01-01T00:00:00Z", user_agent="Mozilla/5.0 (iPhone)"),
        _ev("c", "x", "2026-01-01T00:00:00Z", user_agent="python HEALTHCHECK"),
    ])
    run = run_pipeline(con, path, make_config(normalize={"bots": {"user_agent_patterns": ["uptime", "healthcheck"]}}))
    assert run.summary.bots_filtered == 2
    assert rows(con, "SELECT actor_id FROM events") == [("b",)]


def test_late_arrivals_by_delay_and_by_previous_watermark(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        _ev("u", "a", "2026-01-10T00:00:00Z", received_at="2026-01-10T01:00:00Z"),   # on time
        _ev("u", "b", "2026-01-10T00:00:00Z", received_at="2026-01-13T00:00:00Z"),   # 3 days late > 48h
        _ev("u", "c", "2026-01-05T00:00:00Z"),                                       # before watermark - 48h
        _ev("u", "d", "2026-01-07T12:00:00Z"),                                       # inside the tolerance
    ])
    run = run_pipeline(con, path, make_config(normalize={"late_arrival_tolerance": "48h"}),
                       watermark=datetime(2026, 1, 9))
    assert run.summary.late_rejected == 2
    assert [n for (n,) in rows(con, "SELECT event_name FROM events ORDER BY seq")] == ["d", "a"]


def test_sessions_split_on_the_inactivity_gap_and_seq_counts_from_zero(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        _ev("u", "a", "2026-01-01T00:00:00Z"), _ev("u", "b", "2026-01-01T00:29:00Z"),
        _ev("u", "c", "2026-01-01T01:30:00Z"), _ev("u", "d", "2026-01-01T01:31:00Z"),
    ])
    run_pipeline(con, path, make_config(sessions={"inactivity_gap": "30m"}))
    assert rows(con, "SELECT seq, session_id FROM events ORDER BY seq") == [(0, "u#1"), (1, "u#1"), (2, "u#2"), (3, "u#2")]


def test_identity_components_prefer_a_user_id_then_the_smallest(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        {"anonymous_id": "anon-9", "event_name": "view", "timestamp": "2026-01-01T00:00:00Z"},
        {"anonymous_id": "anon-9", "user_id": "zed", "event_name": "login", "timestamp": "2026-01-01T00:01:00Z"},
        {"anonymous_id": "anon-9", "user_id": "amy", "event_name": "login", "timestamp": "2026-01-01T00:02:00Z"},
        {"anonymous_id": "anon-1", "user_id": "amy", "event_name": "identify", "timestamp": "2026-01-01T00:03:00Z"},
        {"anonymous_id": "anon-1", "event_name": "view", "timestamp": "2026-01-01T00:04:00Z"},
        {"anonymous_id": "lonely", "event_name": "view", "timestamp": "2026-01-01T00:05:00Z"},
        {"anonymous_id": "anon-9", "user_id": "other", "event_name": "view", "timestamp": "2026-01-01T00:06:00Z"},  # not an alias event
    ])
    run = run_pipeline(con, path, make_config())
    assert rows(con, "SELECT actor_id, count(*) FROM events GROUP BY ALL ORDER BY ALL") == [("amy", 5), ("lonely", 1), ("other", 1)]
    assert run.summary.identities_merged == 3


def test_tenants_partition_actors(con, tmp_path) -> None:
    path = write_jsonl(tmp_path / "e.jsonl", [
        _ev("u", "sign_up", "2026-01-01T00:00:00Z", tenant_id="t1"),
        _ev("u", "sign_up", "2026-01-01T00:00:00Z", tenant_id="t2"),
        _ev("u", "sign_up", "2026-01-01T00:00:00Z"),
    ])
    run = run_pipeline(con, path, make_config())
    assert run.summary.actors == 3 and run.summary.duplicates == 0
    assert rows(con, "SELECT tenant_id, count(*) FROM journeys GROUP BY ALL ORDER BY ALL") == [("", 1), ("t1", 1), ("t2", 1)]


def test_rerun_with_the_previous_watermark_only_rejects_new_old_events(con, tmp_path) -> None:
    first = [_ev("u", "a", "2026-01-01T00:00:00Z"), _ev("u", "b", "2026-01-10T00:00:00Z")]
    cfg = make_config(normalize={"late_arrival_tolerance": "48h"})
    run1 = run_pipeline(con, write_jsonl(tmp_path / "1.jsonl", first), cfg)
    assert (run1.summary.accepted, run1.summary.late_rejected) == (2, 0)
    grown = first + [_ev("u", "backfill", "2026-01-02T00:00:00Z"), _ev("u", "c", "2026-01-11T00:00:00Z")]
    run2 = run_pipeline(con, write_jsonl(tmp_path / "2.jsonl", grown), cfg, watermark=run1.summary.watermark)
    assert (run2.summary.accepted, run2.summary.late_rejected) == (3, 1)
    assert rows(con, "SELECT event_name FROM events ORDER BY seq") == [("a",), ("b",), ("c",)]


def test_actor_chunks_give_the_same_events(tmp_path, monkeypatch) -> None:
    """Big inputs are sequenced in whole-actor chunks of a sorted stream; seq and sessions must not depend on how many."""
    from engine import sequencing
    from tests.engine.conftest import demo_tables_by_chunk_size

    (default,), (tiny,) = demo_tables_by_chunk_size(tmp_path, monkeypatch, sequencing,
                                                    ["SELECT * FROM events ORDER BY tenant_id, actor_id, seq"])
    assert len(default) == 16_964 and len({r[6] for r in default}) > 2_400   # events, sessions
    assert default == tiny


def test_rate_ceiling_finds_heavy_actors_by_hash_and_judges_each_alone(con, tmp_path, monkeypatch) -> None:
    """Heavy actors are picked by their hash; actors sharing one (here: every actor) go to the window together,
    which must still judge each actor alone: 'b' bursts, 'c' and 'd' together pass the ceiling but neither alone."""
    from engine import sequencing

    monkeypatch.setattr(sequencing, "_ACTOR_HASH", "CASE WHEN {salt} = 0 THEN hash(tenant_id) ELSE hash(tenant_id, actor_id, {salt}) END")
    calm = [_ev(who, "tick", f"2026-01-01T00:00:{i % 60:02d}.{i:03d}Z", n=i) for who in "cd" for i in range(100)]
    run = run_pipeline(con, write_jsonl(tmp_path / "e.jsonl", _burst(30, 150, 0.4) + calm),
                       make_config(normalize={"bots": {"max_events_per_minute": 120, "user_agent_patterns": []}}))
    assert run.summary.bots_filtered == 150
    assert rows(con, "SELECT actor_id, count(*) FROM events GROUP BY ALL ORDER BY ALL") == [("c", 100), ("d", 100)]


def test_a_burst_across_two_runs_is_caught_with_the_stored_events(tmp_path, monkeypatch) -> None:
    """An incremental run's stored events join the rate rule as context rows (engine.incremental.rate_context),
    which get their actor hash here: a burst split across the two runs makes the same bot a full run finds."""
    from engine.app import pipeline
    from engine.incremental import FULL_ENV
    from engine.workspace import Workspace

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text((FIXTURES / "demo.yaml").read_text().replace("source: demo_events.jsonl", f"source: {tmp_path / 'data' / '*.jsonl'}")
                   + "\nnormalize:\n  bots:\n    max_events_per_minute: 120\n")
    demo = [line for line in (FIXTURES / "demo_events.jsonl").read_text().splitlines() if line]
    burst = [json.dumps(_ev("b", "tick", (datetime(2026, 6, 1) + timedelta(seconds=i * 0.4)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"))
             for i in range(150)]  # after the demo's events (none late), 150 in 60 s
    results = []
    for full in ("0", "1"):
        monkeypatch.setenv(FULL_ENV, full)
        data = tmp_path / "data"
        data.mkdir()
        for i, part in enumerate((demo + burst[:100], burst[100:])):
            (data / f"part{i}.jsonl").write_text("\n".join(part) + "\n")
            summary = pipeline.run(config_path=str(cfg), workspace=str(tmp_path / f"ws{full}"), quiet=True)
        con = Workspace.open(tmp_path / f"ws{full}", read_only=True, create=False).con
        results.append((summary["bots_filtered"], rows(con, "SELECT count(*) FROM events WHERE actor_id = 'b'")))
        con.close()
        for f in data.iterdir():
            f.unlink()
        data.rmdir()
    assert results[0] == results[1] and results[0][1] == [(0,)]
