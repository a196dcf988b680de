"""engine.sequencing: the keys numbered by numpy meet their own staged rows (POSITIONAL JOIN), whatever the order.

A shuffled stream with rejected and quarantined rows between the accepted ones, aliased actors, missing ids
and repeats beyond the dedupe window: every event must keep its own line's columns (each line carries its
number in its properties), its own ids, and the seq and session an independent count gives.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine import ingest, normalize, sequencing
from engine.staging_sql import LINE_BITS
from tests.engine.conftest import make_config, rows, write_jsonl

T0 = datetime(2026, 3, 2, 8)
GAP_S = 30 * 60
CFG = make_config(normalize={"dedupe_window": "1h", "late_arrival_tolerance": "48h",
                             "bots": {"user_agent_patterns": ["bot"], "max_events_per_minute": 1000},
                             "identity": {"alias_events": ["identify"]}},
                  sessions={"inactivity_gap": "30m"})


def _stream(seed: int) -> list[dict[str, Any] | str]:
    """Lines in shuffled order; each event's properties hold its number n, and `_fate` says what should happen."""
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []

    def add(fate: str, **event: Any) -> None:
        events.append({**event, "properties": {"n": len(events)}, "_fate": fate})

    for a in range(30):
        t = T0 + timedelta(minutes=rnd.randrange(600))
        who = {"anonymous_id": f"anon{a}"} if a % 5 == 0 else {"user_id": f"u{a:02d}"}
        for k in range(rnd.randrange(3, 9)):
            t += timedelta(minutes=rnd.choice([0, 1, 5, 45, 90]))  # equal times too: input order breaks the tie
            event_id = None if k % 4 == 3 else f"e{a}-{k}"  # a missing id is made from the content
            add("accepted", event_id=event_id, event_name=rnd.choice(["sign_up", "view", "buy"]), timestamp=t.isoformat() + "Z",
                platform=rnd.choice(["web", "ios"]), user_agent=f"agent{a}", **who)
        if a % 5 == 0:  # the anonymous actor identifies: all its events become u{a}'s
            add("accepted", event_id=f"id{a}", event_name="identify", timestamp=(t + timedelta(seconds=1)).isoformat() + "Z",
                anonymous_id=f"anon{a}", user_id=f"u{a:02d}")
        add("accepted", event_id=f"d{a}", event_name="view", timestamp=t.isoformat() + "Z", **who)
        add("duplicate", event_id=f"d{a}", event_name="view", timestamp=(t + timedelta(minutes=1)).isoformat() + "Z", **who)
        add("repeat", event_id=f"d{a}", event_name="view", timestamp=(t + timedelta(days=2)).isoformat() + "Z",
            **who)  # beyond the window: a new event "d{a}#3" (the third occurrence of the id)
        add("bot", event_id=f"b{a}", event_name="view", timestamp=t.isoformat() + "Z", user_agent="Somebot/1.0", **who)
        add("late", event_id=f"l{a}", event_name="view", timestamp=(t - timedelta(days=5)).isoformat() + "Z",
            received_at=t.isoformat() + "Z", **who)
    lines: list[dict[str, Any] | str] = list(events)
    lines += ["not json", json.dumps({"event_name": "view", "user_id": "u01"}), json.dumps({"timestamp": "yesterday"})]
    rnd.shuffle(lines)
    return lines


def _normalised(tmp_path: Path, lines: list[dict[str, Any] | str], drop_lines: set[int] = frozenset()) -> duckdb.DuckDBPyConnection:
    path = write_jsonl(tmp_path / "events.jsonl", [line if isinstance(line, str) else {k: v for k, v in line.items()
                                                                                       if k != "_fate" and v is not None}
                                                   for line in lines])
    con = duckdb.connect(str(tmp_path / "jg.duckdb"))
    ingest.load(con, str(path), CFG, "run-1")
    if drop_lines:  # rows deleted from the staging table (as ingest does when it reads a file again): rowids with holes
        con.execute("DELETE FROM staged_events WHERE list_contains(?, line)", [sorted(drop_lines)])
    normalize.normalize(con, CFG)
    return con


def _check(con: duckdb.DuckDBPyConnection, lines: list[dict[str, Any] | str], drop_lines: set[int] = frozenset()) -> None:
    """Each event against its own line; seq and session counted here from the lines alone."""
    by_n = {line["properties"]["n"]: (number, line) for number, line in enumerate(lines, 1) if isinstance(line, dict)}
    got = rows(con, f"""SELECT CAST(properties->>'n' AS INTEGER), input_order & ((CAST(1 AS BIGINT) << {LINE_BITS}) - 1), actor_id, event_id,
                               event_name, ts, platform, user_agent, seq, session_id FROM events""")
    kept = {n for n, (number, line) in by_n.items() if line["_fate"] in ("accepted", "repeat") and number not in drop_lines}
    assert sorted(r[0] for r in got) == sorted(kept) and len(got) > 150
    actor_of = {f"anon{a}": f"u{a:02d}" for a in range(0, 30, 5)}
    per_actor: dict[str, list[tuple[datetime, int, int, str]]] = {}
    for n, line_no, actor, event_id, name, ts, platform, agent, seq, session in got:
        number, line = by_n[n]
        assert line_no == number and (name, platform, agent) == (line["event_name"], line.get("platform"), line.get("user_agent"))
        assert ts == datetime.fromisoformat(line["timestamp"].rstrip("Z"))
        assert actor == line.get("user_id") or actor == actor_of[line["anonymous_id"]]
        if line["event_id"] is None:
            assert event_id.startswith("h:")
        else:
            assert event_id == line["event_id"] + ("#3" if line["_fate"] == "repeat" else "")
        per_actor.setdefault(actor, []).append((ts, line_no, seq, session))
    for actor, events in per_actor.items():
        events.sort()
        sessions = 1
        for i, (ts, _, seq, session) in enumerate(events):
            sessions += i > 0 and (ts - events[i - 1][0]).total_seconds() > GAP_S
            assert (seq, session) == (i, f"{actor}#{sessions}")


@pytest.mark.parametrize("seed", [1, 2])
def test_shuffled_stream_keeps_every_event_on_its_own_row(tmp_path, seed) -> None:
    lines = _stream(seed)
    con = _normalised(tmp_path, lines)
    _check(con, lines)


def test_deleted_staged_rows_shift_positions_and_stay_aligned(tmp_path) -> None:
    lines = _stream(3)
    drop = {number for number, line in enumerate(lines, 1)  # events no other row's fate depends on
            if isinstance(line, dict) and number % 5 == 0 and str(line["event_id"]).startswith("e")}
    con = _normalised(tmp_path, lines, drop)
    _check(con, lines, drop)


def test_an_actor_hash_collision_draws_another_hash(tmp_path, monkeypatch) -> None:
    """Salt 0 gives every actor of a tenant one hash: the count check must catch it and the numbers stay exact."""
    monkeypatch.setattr(sequencing, "_ACTOR_HASH", "CASE WHEN {salt} = 0 THEN hash(tenant_id) ELSE hash(tenant_id, actor_id, {salt}) END")
    monkeypatch.setattr(sequencing, "CHUNK_EVENTS", 40)  # several hash classes
    lines = _stream(4)
    con = _normalised(tmp_path, lines)
    _check(con, lines)
