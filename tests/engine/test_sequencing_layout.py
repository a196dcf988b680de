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
from ontology.errors import EngineError
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


def test_actors_that_collide_under_every_salt_stop_with_an_error(tmp_path, monkeypatch) -> None:
    """Hashes that collide whatever the salt (as two ids with equal own hashes would under a per-column hash) end
    in a clear error after the last salt, not in passes without end."""
    salts = _salts_drawn(monkeypatch)
    for name in ("_ACTOR_HASH", "_SALTED_HASH"):
        monkeypatch.setattr(sequencing, name, "hash(tenant_id, {salt})")  # one hash per tenant, whatever the salt
    with pytest.raises(EngineError, match="still share hashes after 8 salts"):
        _normalised(tmp_path, _stream(3))
    assert salts == list(range(sequencing._MAX_SALTS))


def _salts_drawn(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The salts the keys are hashed with, in order (a second one means the count check found a collision)."""
    salts: list[int] = []
    real = sequencing._hash_sql

    def spy(salt: int, run: Any) -> str:
        salts.append(salt)
        return real(salt, run)
    monkeypatch.setattr(sequencing, "_hash_sql", spy)
    return salts


def test_the_passes_read_the_flags_actor_hash(tmp_path, monkeypatch) -> None:
    """Salt 0 groups the keys by the hash the flags hold (hashed once), not one computed again per pass: a
    colliding column must be caught by the count check and the next salt's hash give the exact numbers."""
    salts = _salts_drawn(monkeypatch)
    real = sequencing.write_events

    def colliding(con: duckdb.DuckDBPyConnection, flagged: str, *args: Any) -> sequencing.Accepted:
        con.execute(f"UPDATE {flagged} SET {sequencing.ACTOR_HASH} = 7")
        return real(con, flagged, *args)
    monkeypatch.setattr(sequencing, "write_events", colliding)
    monkeypatch.setattr(sequencing, "CHUNK_EVENTS", 40)  # several hash classes
    lines = _stream(5)
    con = _normalised(tmp_path, lines)
    _check(con, lines)
    assert salts == [0, 1]


def test_stored_and_new_events_of_an_actor_share_the_salt_0_hash(tmp_path, monkeypatch) -> None:
    """An incremental run hashes its stored events in SQL and its new ones in the flags: the same hash, so one
    pass suffices (a mismatch would split the actors and draw another salt) and the numbers match a full run."""
    from engine.app import pipeline
    from engine.incremental import FULL_ENV
    from engine.workspace import Workspace
    from tests.engine.conftest import FIXTURES

    salts = _salts_drawn(monkeypatch)
    monkeypatch.setattr(sequencing, "CHUNK_EVENTS", 400)  # several hash classes
    lines = sorted((json.loads(line) for line in (FIXTURES / "demo_events.jsonl").read_text().splitlines() if line),
                   key=lambda row: row["timestamp"])
    data = tmp_path / "data"
    data.mkdir()
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text((FIXTURES / "demo.yaml").read_text().replace("source: demo_events.jsonl", f"source: {data / '*.jsonl'}"))
    half = sum(row["timestamp"] < "2026-02-24" for row in lines)  # as tests/e2e/test_incremental.py grows the demo
    numbers = "SELECT tenant_id, actor_id, event_id, seq, session_id FROM events ORDER BY ALL"
    got = []
    for full in ("0", "1"):
        monkeypatch.setenv(FULL_ENV, full)
        for i, part in enumerate((lines[:half], lines[half:])):
            (data / f"part{i}.jsonl").write_text("\n".join(json.dumps(row) for row in part) + "\n")
            summary = pipeline.run(config_path=str(cfg), workspace=str(tmp_path / f"ws{full}"), quiet=True)
        assert summary["incremental"]["mode"] == ("incremental" if full == "0" else "full")
        con = Workspace.open(tmp_path / f"ws{full}", read_only=True, create=False).con
        got.append(rows(con, numbers))
        con.close()
        for f in data.iterdir():
            f.unlink()
    assert got[0] == got[1] and len(got[0]) > 1000
    assert salts == [0, 0, 0, 0]
