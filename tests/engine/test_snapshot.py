"""build_snapshots on hand-made journey tables (exact counts), determinism, model check, and the store."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import snapshot_store as store
from engine.config import Config, JourneyConfig, Outcome, Release, Segment, SnapshotConfig, from_dict
from engine.snapshot import Snapshot, build_snapshots
from fixtures import paper_chain as pc
from ontology.errors import BadInput, NotFound, StoreError
from ontology.model import canonical_json

DATA_END = datetime(2026, 1, 9, 12, 0)
JOURNEY = JourneyConfig(name="onboard", start="a", level="raw", window_s=86400,
                        outcomes=(Outcome("converted", when="event_name = 'paid'"), Outcome("dropped", inactive_for_s=3600)))
CFG = Config(source="x", journeys=(JOURNEY,), segments=(Segment("plan", column="properties.plan"),),
             releases=(Release("r1", "2026-01-06T00:00:00Z"),),
             snapshots=SnapshotConfig(period_s=86400, top_paths=3, release_window_s=86400))

# (journey_id, start, minutes to outcome, outcome or None when censored, plan, states)
HAND = [
    ("J1", "2026-01-05 10:00", 60, "converted", "pro", ["a", "b", "c"]),
    ("J2", "2026-01-05 11:00", 90, "converted", "pro", ["a", "b", "b", "c"]),
    ("J3", "2026-01-05 12:00", 30, "dropped", "free", ["a"]),
    ("J4", "2026-01-05 13:00", 45, "dropped", None, ["a", "c"]),
    ("J5", "2026-01-09 09:00", 10, None, "free", ["a", "b"]),
    ("J6", "2026-01-06 08:00", 20, "converted", "pro", ["a", "d"]),
]


def hand_db(path, rows=HAND) -> duckdb.DuckDBPyConnection:
    """Journey tables from the table above, inserted in bulk (one statement per table)."""
    con = duckdb.connect(str(path))
    con.execute(pc.TABLES_SQL)
    journeys = pa.Table.from_pylist([
        {"jid": jid, "start": start, "minutes": minutes, "outcome": outcome, "plan": plan, "n": len(states)}
        for jid, start, minutes, outcome, plan, states in rows])
    steps = pa.Table.from_pylist([{"jid": jid, "step": i, "state": state, "start": start}
                                  for jid, start, _, _, _, states in rows for i, state in enumerate(states)])
    con.register("hand_j", journeys)
    con.register("hand_s", steps)
    con.execute("""INSERT INTO journeys SELECT 'onboard', '', jid, 'actor-' || jid, start::TIMESTAMP,
                   start::TIMESTAMP + to_minutes(minutes), outcome, outcome IS NULL, n,
                   CASE WHEN plan IS NULL THEN MAP {}::MAP(VARCHAR, VARCHAR) ELSE MAP {'plan': plan} END FROM hand_j""")
    con.execute("""INSERT INTO journey_steps SELECT 'onboard', jid, step, state, start::TIMESTAMP + to_minutes(step),
                   jid || '-' || step FROM hand_s""")
    return con


@pytest.fixture(scope="module")
def hand(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Snapshot]:
    con = hand_db(tmp_path_factory.mktemp("hand") / "jg.duckdb")
    snaps = build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0", data_end=DATA_END)
    return {(s.scope, json.dumps(s.payload.get("segment")), s.release, s.window[0]): s for s in snaps}


def by_scope(hand: dict, scope: str, segment=None, release=None, start=None) -> Snapshot:
    found = [s for k, s in hand.items() if k[0] == scope and k[1] == json.dumps(segment) and k[2] == release
             and (start is None or k[3] == start)]
    assert len(found) == 1, [k for k in hand]
    return found[0]


ALL_PAYLOAD = {
    "journeys": 6, "completed": 5, "censored": 1, "actors": 5,
    "states": ["a", "b", "c", "d"], "outcomes": ["converted", "dropped"],
    "outcome_counts": {"converted": 3, "dropped": 2},
    "transitions": [{"from": "a", "to": "b", "count": 2}, {"from": "a", "to": "c", "count": 1},
                    {"from": "a", "to": "d", "count": 1}, {"from": "a", "to": "dropped", "count": 1},
                    {"from": "b", "to": "b", "count": 1}, {"from": "b", "to": "c", "count": 2},
                    {"from": "c", "to": "converted", "count": 2}, {"from": "c", "to": "dropped", "count": 1},
                    {"from": "d", "to": "converted", "count": 1}],
    "reach_counts": {"a": 5, "b": 2, "c": 3, "d": 1},
    "reach_outcome_counts": {"a": {"converted": 3, "dropped": 2}, "b": {"converted": 2},
                             "c": {"converted": 2, "dropped": 1}, "d": {"converted": 1}},
    "visit_counts": {"a": 5, "b": 3, "c": 3, "d": 1},
    "repeat_counts": {"a": 0, "b": 1, "c": 0, "d": 0},
    "repeat_outcome_counts": {"a": {"converted": 0, "dropped": 0}, "b": {"converted": 1},
                              "c": {"converted": 0, "dropped": 0}, "d": {"converted": 0}},
    # a dropped journey stops at its last step (J3: 0 s, J4: 60 s), not at the inactivity timeout
    "durations": {"median_s": 1200.0, "median_length": 2.0,
                  "by_class": {"converted": {"median_s": 3600.0, "median_length": 3.0},
                               "lost": {"median_s": 30.0, "median_length": 1.5}}},
    "outcome_adjacent": {"within_s": 5, "counts": {}},
    "paths": {"top": [
        {"path": ["a"], "outcome": "dropped", "count": 1, "share": 0.2, "actors": 1, "conversion_rate": 0.0,
         "sequence_count": 1, "sequence_conversions": 0, "median_duration_s": 0.0, "median_length": 1.0},
        {"path": ["a", "b", "b", "c"], "outcome": "converted", "count": 1, "share": 0.2, "actors": 1,
         "conversion_rate": 1.0, "sequence_count": 1, "sequence_conversions": 1, "median_duration_s": 5400.0,
         "median_length": 4.0},
        {"path": ["a", "b", "c"], "outcome": "converted", "count": 1, "share": 0.2, "actors": 1,
         "conversion_rate": 1.0, "sequence_count": 1, "sequence_conversions": 1, "median_duration_s": 3600.0,
         "median_length": 3.0}],
        "coverage": 0.6, "other_count": 2, "other_share": 0.4},
    "start_state": "a", "conversion_outcome": "converted", "dropoff_outcome": "dropped",
    "scope": "all", "segment": None, "release": None, "mature": True, "tenant_id": "", "journey": "onboard",
    "level": "raw", "collapse_self_loops": False, "input_hash": "in-1", "engine_version": "0.1.0",
    "window": {"start": "2026-01-05T10:00:00Z", "end": "2026-01-09T12:00:00Z"},
}


@pytest.mark.parametrize("key", sorted(ALL_PAYLOAD), ids=str)
def test_all_scope_payload_counts_exactly(hand: dict, key: str) -> None:
    assert by_scope(hand, "all").payload[key] == ALL_PAYLOAD[key]


@pytest.mark.parametrize(
    ("scope", "segment", "release", "start", "journeys", "completed", "mature"),
    [
        pytest.param("period", None, None, "2026-01-05T00:00:00Z", 4, 4, True, id="period-mon"),
        pytest.param("period", None, None, "2026-01-06T00:00:00Z", 1, 1, True, id="period-tue"),
        pytest.param("period", None, None, "2026-01-09T00:00:00Z", 1, 0, False, id="period-fri-immature"),
        pytest.param("segment", {"key": "plan", "value": "pro"}, None, None, 3, 3, True, id="segment-pro"),
        pytest.param("segment", {"key": "plan", "value": "free"}, None, None, 2, 1, True, id="segment-free"),
        pytest.param("segment", {"key": "plan", "value": "(none)"}, None, None, 1, 1, True, id="segment-missing"),
        pytest.param("release_before", None, "r1", "2026-01-05T00:00:00Z", 4, 4, True, id="release-before"),
        pytest.param("release_after", None, "r1", "2026-01-06T00:00:00Z", 1, 1, True, id="release-after"),
    ],
)
def test_scopes_assign_journeys_by_start(hand: dict, scope, segment, release, start, journeys, completed, mature) -> None:
    snap = by_scope(hand, scope, segment, release, start)
    assert (snap.payload["journeys"], snap.completed, snap.mature) == (journeys, completed, mature)
    assert sum(snap.payload["outcome_counts"].values()) == completed
    assert sum(t["count"] for t in snap.payload["transitions"] if t["to"] in snap.payload["outcomes"]) == completed


def test_scope_count_and_reconciliation(hand: dict) -> None:
    assert len(hand) == 9  # all + 3 periods + 3 segment values + 2 release scopes
    periods = [s for k, s in hand.items() if k[0] == "period"]
    assert sum(s.payload["journeys"] for s in periods) == by_scope(hand, "all").payload["journeys"]
    empty = by_scope(hand, "period", start="2026-01-09T00:00:00Z")
    assert empty.payload["paths"] == {"top": [], "coverage": 0.0, "other_count": 0, "other_share": 0.0}
    assert empty.metrics.absorption("a", "dropped") == 1.0  # no completed journey: the start state drops off


@pytest.mark.parametrize(
    ("method", "args", "expected"),
    [
        pytest.param("reach", ("b",), 0.4, id="reach-b"),
        pytest.param("p_outcome_given_reached", ("b", "converted"), 1.0, id="p-given-b"),
        pytest.param("p_outcome_given_not_reached", ("b", "converted"), 1 / 3, id="p-given-not-b"),
        pytest.param("lift", ("b", "converted"), 3.0, id="lift-b"),
        pytest.param("lift", ("a", "converted"), None, id="lift-start-undefined"),
        pytest.param("lift", ("d", "converted"), 1 / 0.5, id="lift-d"),
        pytest.param("visits_mean", ("b",), 1.5, id="visits-b"),
        pytest.param("transition_count", ("b", "c"), 2, id="count-b-c"),
        pytest.param("out_total", ("a",), 5, id="out-a"),
    ],
)
def test_snapshot_api(hand: dict, method: str, args: tuple, expected) -> None:
    got = getattr(by_scope(hand, "all"), method)(*args)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_metrics_json_shape(hand: dict) -> None:
    snap = by_scope(hand, "all")
    out = snap.to_metrics_json()
    assert {"snapshot_id", "journey", "window", "journeys", "censored", "states", "transitions"} <= set(out)
    state_keys = {"state", "reach", "visits_mean", "exit_probability", "expected_steps", "absorption",
                  "p_outcome_given_reached", "lift", "removal_effect", "removal_effect_relative"}
    assert [s["state"] for s in out["states"]] == ["a", "b", "c", "d"]
    for s in out["states"]:
        assert state_keys <= set(s)
        assert set(s["absorption"]) == {"converted", "dropped"}
    assert out["transitions"][0] == {"from": "a", "to": "b", "count": 2, "probability": 0.4}
    assert json.loads(json.dumps(out, allow_nan=False)) == out  # pure JSON, no NaN


def test_fixture_config_dict_matches_config() -> None:
    assert from_dict(pc.config_dict()).config_hash == pc.config().config_hash


def test_data_end_defaults_to_each_tenants_last_event(tmp_path) -> None:
    """Without data_end, each tenant's last event decides its window end and period maturity."""
    con = hand_db(tmp_path / "t.duckdb")
    con.execute("INSERT INTO journeys SELECT journey, 'acme', 'acme-' || journey_id, actor_id, start_ts, end_ts, outcome, "
                "censored, n_steps, segments FROM journeys WHERE tenant_id = ''")
    con.execute("INSERT INTO journey_steps SELECT journey, 'acme-' || journey_id, step, state, ts, event_id FROM journey_steps")
    con.execute("CREATE TABLE events(tenant_id VARCHAR, ts TIMESTAMP)")
    con.execute("INSERT INTO events VALUES ('', '2026-01-09 12:00'), ('acme', '2026-01-20 00:00')")
    snaps = build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0")
    alls = {s.tenant_id: s for s in snaps if s.scope == "all"}
    assert alls[""].window[1] == "2026-01-09T12:00:00Z" and alls["acme"].window[1] == "2026-01-20T00:00:00Z"
    assert alls[""].snapshot_id != alls["acme"].snapshot_id
    assert alls[""].payload["transitions"] == alls["acme"].payload["transitions"] == ALL_PAYLOAD["transitions"]
    fridays = {s.tenant_id: s.mature for s in snaps if s.scope == "period" and s.window[0] == "2026-01-09T00:00:00Z"}
    assert fridays == {"": False, "acme": True}


def test_collapse_self_loops(tmp_path) -> None:
    con = hand_db(tmp_path / "c.duckdb")
    journey = replace(JOURNEY, collapse_self_loops=True)
    snap = next(s for s in build_snapshots(con, replace(CFG, journeys=(journey,)), journey, "i", "v", data_end=DATA_END)
            if s.scope == "all")
    assert snap.transition_count("b", "b") == 0
    assert snap.payload["visit_counts"]["b"] == 2
    assert snap.payload["paths"]["top"][0]["path"] == ["a", "b", "c"] and snap.payload["paths"]["top"][0]["count"] == 2
    assert snap.payload["collapse_self_loops"] is True


def test_ids_are_content_hashes(tmp_path, hand: dict) -> None:
    con = hand_db(tmp_path / "i.duckdb")
    again = build_snapshots(con, CFG, JOURNEY, "in-1", "0.1.0", data_end=DATA_END)
    other = build_snapshots(con, CFG, JOURNEY, "in-2", "0.1.0", data_end=DATA_END)
    assert sorted(s.snapshot_id for s in again) == sorted(s.snapshot_id for s in hand.values())
    assert not {s.snapshot_id for s in again} & {s.snapshot_id for s in other}
    assert len({s.snapshot_id for s in again}) == len(again)


def _sim_db(path, shuffle_seed: int | None = None) -> tuple[duckdb.DuckDBPyConnection, datetime]:
    """The same simulation, rows optionally inserted in a seeded random order."""
    src = duckdb.connect()
    data_end = pc.load_simulation(src, 4000, 11)
    con = duckdb.connect(str(path))
    con.execute(pc.TABLES_SQL)
    for table in ("journeys", "journey_steps"):
        rows = src.sql(f"SELECT * FROM {table}").to_arrow_table()
        if shuffle_seed is not None:
            rows = rows.take(np.random.default_rng(shuffle_seed).permutation(rows.num_rows))
        con.register("rows_in", rows)
        con.execute(f"INSERT INTO {table} SELECT * FROM rows_in")
        con.unregister("rows_in")
    return con, data_end


@pytest.fixture(scope="module")
def sim_builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Snapshot], list[Snapshot]]:
    root = tmp_path_factory.mktemp("sim")
    cfg = pc.config()
    builds = []
    for name, seed in (("plain", None), ("shuffled", 7)):
        con, data_end = _sim_db(root / f"{name}.duckdb", seed)
        builds.append(build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end))
        con.close()
    return builds[0], builds[1]


def test_shuffled_rows_change_nothing(sim_builds) -> None:
    plain, shuffled = sim_builds
    assert [s.payload_json for s in plain] == [s.payload_json for s in shuffled]
    assert len(plain) == 11  # all, 5 periods, 3 platforms, 2 release scopes


def test_two_builds_give_byte_identical_metrics_json(sim_builds) -> None:
    plain, shuffled = sim_builds
    for a, b in zip(plain, shuffled):
        assert canonical_json(a.to_metrics_json()) == canonical_json(b.to_metrics_json())
        assert json.dumps(a.to_metrics_json()) == json.dumps(b.to_metrics_json())


def test_paths_reconcile_with_totals(sim_builds) -> None:
    for snap in sim_builds[0]:
        paths = snap.payload["paths"]
        shown = sum(p["count"] for p in paths["top"])
        assert shown + paths["other_count"] == snap.completed
        if snap.completed:
            assert paths["coverage"] + paths["other_share"] == pytest.approx(1.0, abs=2e-6)
        counts = [p["count"] for p in paths["top"]]
        assert counts == sorted(counts, reverse=True) and len(counts) <= 10


def test_first_order_data_prefers_first_order(sim_builds) -> None:
    check = next(s for s in sim_builds[0] if s.scope == "all").payload["model_check"]
    assert check["preferred"] == "first_order"
    assert check["heldout_transitions"] > 1000
    assert "the chain fits" in check["note"]


def test_second_order_data_prefers_second_order(tmp_path) -> None:
    # after m the next state depends on where the journey came from: x>m>y converts, z>m>w drops
    rows = []
    for i in range(600):
        via, after, outcome = ("x", "y", "converted") if i % 2 else ("z", "w", "dropped")
        rows.append((f"K{i:04d}", "2026-01-05 10:00", 30, outcome, "pro", ["a", via, "m", after]))
    con = hand_db(tmp_path / "so.duckdb", rows)
    snap = next(s for s in build_snapshots(con, CFG, JOURNEY, "i", "v", data_end=DATA_END) if s.scope == "all")
    check = snap.payload["model_check"]
    assert check["preferred"] == "second_order", check
    assert check["second_order_loglik"] > check["first_order_loglik"]
    assert "previous step predicts" in check["note"]


# ---- store ---------------------------------------------------------------------------------
def test_store_round_trip_and_reuse(tmp_path, hand: dict) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    snaps = sorted(hand.values(), key=lambda s: s.snapshot_id)
    assert store.write_snapshots(con, snaps) == len(snaps)
    assert store.write_snapshots(con, snaps) == 0  # re-running reuses
    loaded = store.load_snapshot(con, snaps[0].snapshot_id)
    assert loaded.payload_json == snaps[0].payload_json
    assert store.load_snapshot(con, "snapshot:" + snaps[1].snapshot_id[:10]).snapshot_id == snaps[1].snapshot_id
    listed = store.list_snapshots(con, scope="period")
    assert [r["window_start"] for r in listed] == ["2026-01-05T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-09T00:00:00Z"]
    json.dumps(listed)  # JSON-ready for `journeygraph snapshots --format json`
    assert [r["completed"] for r in listed] == [4, 1, 0]


def test_store_refuses_to_overwrite_and_rolls_back(tmp_path, hand: dict) -> None:
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    first, second, third = sorted(hand.values(), key=lambda s: s.snapshot_id)[:3]
    store.write_snapshots(con, [first])
    tampered = Snapshot.from_payload({**first.payload, "journeys": 999})
    with pytest.raises(StoreError, match=f"snapshot {first.snapshot_id} is already stored with different content"):
        store.write_snapshots(con, [second, third, tampered])
    assert list(store.snapshot_ids(con)) == [first.snapshot_id]  # nothing of the failed run is visible
    assert store.load_snapshot(con, first.snapshot_id).payload["journeys"] == first.payload["journeys"]


def test_killed_run_leaves_no_snapshot(tmp_path, hand: dict) -> None:
    db = tmp_path / "k.duckdb"
    snaps_file = tmp_path / "snaps.json"
    snaps_file.write_text(json.dumps([s.payload_json for s in hand.values()]))
    script = f"""
import json, os, duckdb
from engine import snapshot_store as store
from engine.snapshot import Snapshot
con = duckdb.connect({str(db)!r})
store.ensure_table(con)
snaps = [Snapshot(t) for t in json.loads(open({str(snaps_file)!r}).read())]
con.execute("BEGIN TRANSACTION")
store._insert_new(con, [store._row(s) for s in snaps])
print(con.execute("SELECT count(*) FROM snapshots").fetchone()[0], flush=True)
os._exit(9)  # killed before COMMIT
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert proc.stdout.strip() == str(len(hand))  # the rows were written inside the transaction
    con = duckdb.connect(str(db))
    assert con.execute("SELECT count(*) FROM snapshots").fetchone()[0] == 0


@pytest.mark.parametrize(
    ("given", "match", "error"),
    [pytest.param("ffffffff", "no snapshot 'ffffffff'", NotFound, id="unknown"),
     pytest.param("", "ambiguous", BadInput, id="ambiguous-prefix")],
)
def test_load_snapshot_errors_name_the_id(tmp_path, hand: dict, given: str, match: str, error: type) -> None:
    con = duckdb.connect(str(tmp_path / "e.duckdb"))
    store.write_snapshots(con, list(hand.values()))
    with pytest.raises(error, match=match):
        store.load_snapshot(con, given)
