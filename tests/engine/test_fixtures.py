"""The demo fixture generator: deterministic, committed file up to date, effects planted and switchable.

The generating matrices are checked directly (null mode: identical across every
segment cell and both sides of the release; planted mode: different exactly
where an effect is planted). The emitted stream is checked independently of the
engine: demo.yaml's own state rules are applied with DuckDB and the planted
differences must show up in the data (and not in the null stream).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import numpy as np
import pytest
import yaml

from engine.config import load_config
from fixtures.demo_planted import expected_planted
from fixtures.generate_demo import (
    COLUMNS,
    OUTCOMES,
    PERIODS,
    PLANS,
    PLATFORMS,
    STATES,
    DemoParams,
    generate,
    transition_matrices,
    transition_matrix,
    walk,
    write_jsonl,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
DEMO_EVENTS = FIXTURES / "demo_events.jsonl"
EFFECTS = ("activation_driver", "dropoff_point", "regression", "segment_divergence", "loop")
FINDING_TYPES = {"activation_driver", "necessary_for_conversion", "dropoff_point", "dropoff_cluster", "regression",
                 "segment_divergence", "repeated_visit", "fast_path", "slow_path"}
SMALL = DemoParams(n_users=300, seed=3)


def _bytes(rows: list[dict], path: Path) -> bytes:
    write_jsonl(rows, path)
    return path.read_bytes()


# --------------------------------------------------------------------------- determinism

def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    assert _bytes(generate(SMALL), tmp_path / "a.jsonl") == _bytes(generate(SMALL), tmp_path / "b.jsonl")


def test_other_seed_gives_other_stream(tmp_path: Path) -> None:
    assert _bytes(generate(SMALL), tmp_path / "a.jsonl") != _bytes(generate(replace(SMALL, seed=4)), tmp_path / "b.jsonl")


def test_cli_in_a_fresh_process_matches_the_library(tmp_path: Path) -> None:
    out = tmp_path / "cli.jsonl"
    subprocess.run([sys.executable, "-m", "fixtures.generate_demo", "--out", str(out), "--users", "300", "--seed", "3", "--null"],
                   check=True, capture_output=True, cwd=FIXTURES.parent)
    assert out.read_bytes() == _bytes(generate(DemoParams.null(n_users=300, seed=3)), tmp_path / "lib.jsonl")


def test_committed_demo_file_equals_a_fresh_generation(tmp_path: Path) -> None:
    fresh = _bytes(generate(DemoParams()), tmp_path / "fresh.jsonl")
    assert DEMO_EVENTS.read_bytes() == fresh, "regenerate: python -m fixtures.generate_demo --out fixtures/demo_events.jsonl"
    assert len(fresh) < 5_000_000


# --------------------------------------------------------------------------- generating probabilities

@pytest.mark.parametrize("params", [DemoParams(), DemoParams.null(), DemoParams(loop=0.5, regression=0.3)],
                         ids=["planted", "null", "partial"])
def test_every_row_is_a_distribution(params: DemoParams) -> None:
    for P in transition_matrices(params).values():
        assert P.shape == (len(STATES), len(COLUMNS))
        assert (P >= 0).all()
        np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("dimension", ["platform", "plan", "period"])
def test_null_mode_is_identical_across_segments_and_release(dimension: str) -> None:
    mats = transition_matrices(DemoParams.null())
    reference = mats[("web", "free", "before")]
    for cell, P in mats.items():
        np.testing.assert_array_equal(P, reference, err_msg=f"{dimension}: cell {cell} differs in null mode")


def test_plan_never_changes_behaviour_even_when_planted() -> None:
    params = DemoParams()
    for platform in PLATFORMS:
        for period in PERIODS:
            cells = [transition_matrix(params, platform, plan, period) for plan in PLANS]
            for other in cells[1:]:
                np.testing.assert_array_equal(cells[0], other)


def _cell(P: np.ndarray, row: str, col: str) -> float:
    return float(P[STATES.index(row), COLUMNS.index(col)])


# (effect, cell A, cell B, row, column, minimum |P_A - P_B|)
PLANTED_DIFFERENCES = [
    ("segment_divergence", ("android", "free", "before"), ("web", "free", "before"), "feature_used", "help_center", 0.2),
    ("regression", ("web", "free", "before"), ("web", "free", "after"), "import_data", "invite_teammate", 0.2),
]


@pytest.mark.parametrize("effect,cell_a,cell_b,row,col,min_diff", PLANTED_DIFFERENCES, ids=[d[0] for d in PLANTED_DIFFERENCES])
def test_planted_mode_differs_between_cells(effect: str, cell_a: tuple, cell_b: tuple, row: str, col: str, min_diff: float) -> None:
    planted = transition_matrices(DemoParams())
    null = transition_matrices(DemoParams.null())
    assert abs(_cell(planted[cell_a], row, col) - _cell(planted[cell_b], row, col)) >= min_diff
    assert _cell(null[cell_a], row, col) == _cell(null[cell_b], row, col)


# effect -> rows it may change (and must change in at least one cell)
EFFECT_ROWS = {
    "activation_driver": {"import_data"},
    "dropoff_point": {"billing_page"},
    "regression": {"import_data"},
    "segment_divergence": {"feature_used"},
    "loop": {"settings"},
}


@pytest.mark.parametrize("effect", EFFECTS)
def test_each_effect_switches_on_alone_and_touches_only_its_rows(effect: str) -> None:
    null = transition_matrices(DemoParams.null())
    alone = transition_matrices(replace(DemoParams.null(), **{effect: 1.0}))
    changed = {STATES[i] for cell in null for i in np.flatnonzero(np.abs(alone[cell] - null[cell]).max(axis=1) > 1e-12)}
    assert changed == EFFECT_ROWS[effect]


# (effect, row, column, cell, planted at least, null at most)
PLANTED_LEVELS = [
    ("activation_driver", "import_data", "converted", ("web", "free", "before"), 0.25, 0.05),
    ("dropoff_point", "billing_page", "dropped", ("web", "free", "before"), 0.5, 0.15),
    ("loop", "settings", "settings", ("web", "free", "before"), 0.5, 0.1),
]


@pytest.mark.parametrize("effect,row,col,cell,planted_min,null_max", PLANTED_LEVELS, ids=[p[0] for p in PLANTED_LEVELS])
def test_planted_levels_are_large_but_switchable(effect: str, row: str, col: str, cell: tuple, planted_min: float, null_max: float) -> None:
    assert _cell(transition_matrices(DemoParams())[cell], row, col) >= planted_min
    assert _cell(transition_matrices(replace(DemoParams(), **{effect: 0.0}))[cell], row, col) <= null_max


def test_null_chain_gives_every_state_the_same_conversion_odds() -> None:
    """The neutral chain absorbs with the same odds everywhere, so no state has lift in null mode."""
    P = transition_matrix(DemoParams.null(), "web", "free", "before")
    Q, R = P[:, : len(STATES)], P[:, len(STATES):]
    B = np.linalg.solve(np.eye(len(STATES)) - Q, R)
    np.testing.assert_allclose(B[:, OUTCOMES.index("converted")], B[0, OUTCOMES.index("converted")], atol=1e-12)


def test_strength_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="strength"):
        transition_matrix(DemoParams(loop=1.5), "web", "free", "before")


def test_walk_always_ends_in_an_outcome() -> None:
    P = np.stack([transition_matrix(DemoParams(), "web", "free", "before")])
    actor, step, col = walk(P, np.zeros(5000, dtype=np.int64), 0, np.random.default_rng(0), max_steps=6)
    last = np.lexsort((step, actor))
    final = col[last][np.r_[np.flatnonzero(np.diff(actor[last])), len(actor) - 1]]
    assert len(final) == 5000
    assert (final >= len(STATES)).all()
    assert step.max() <= 6


# --------------------------------------------------------------------------- expected findings

def test_expected_planted_lists_one_finding_per_effect_on() -> None:
    found = expected_planted(DemoParams())
    assert [f["effect"] for f in found] == list(EFFECTS)
    assert {f["type"] for f in found} <= FINDING_TYPES
    for f in found:
        kind, _, name = f["subject"].partition(":")
        assert kind in {"state", "edge", "segment"}
        if kind == "state":
            assert name in STATES


@pytest.mark.parametrize("effect", EFFECTS)
def test_expected_planted_drops_a_switched_off_effect(effect: str) -> None:
    found = expected_planted(replace(DemoParams(), **{effect: 0.0}))
    assert effect not in [f["effect"] for f in found]
    assert len(found) == len(EFFECTS) - 1


def test_expected_planted_is_empty_in_null_mode() -> None:
    assert expected_planted(DemoParams.null()) == []


# --------------------------------------------------------------------------- configs

@pytest.fixture(scope="module")
def demo_yaml() -> dict:
    return yaml.safe_load((FIXTURES / "demo.yaml").read_text())


def test_demo_yaml_loads_and_names_the_generator_states(demo_yaml: dict) -> None:
    cfg = load_config(FIXTURES / "demo.yaml")
    assert [s.name for s in cfg.states] == [s["name"] for s in demo_yaml["states"]]
    assert set(demo_yaml["states"][i]["name"] for i in range(len(STATES))) == set(STATES)
    journey = cfg.journey("activation")
    assert (journey.start, journey.level, journey.window_s) == ("sign_up", "semantic", 30 * 86400)
    assert journey.conversion_outcome == "converted" and journey.dropoff_outcome == "dropped"
    assert [(r.name, r.at) for r in cfg.releases] == [(DemoParams().release_name, DemoParams().release_at)]
    assert [s.key for s in cfg.segments] == ["plan", "platform"]
    assert cfg.snapshots.period_s == 7 * 86400
    assert Path(cfg.resolve_source()) == DEMO_EVENTS


def test_null_yaml_is_the_demo_config_with_another_source() -> None:
    demo, null = load_config(FIXTURES / "demo.yaml"), load_config(FIXTURES / "null.yaml")
    assert null.source == "null_events.jsonl"
    assert replace(null, source=demo.source) == demo
    assert null.config_hash == demo.config_hash


# --------------------------------------------------------------------------- the stream itself

def test_rows_follow_the_events_contract() -> None:
    rows = generate(SMALL)
    names = {r["event_name"] for r in rows}
    assert {"page_viewed", "identify", "signup_completed", "subscription_started"} <= names
    for r in rows:
        assert r["platform"] in PLATFORMS and r["properties"]["plan"] in PLANS
        assert datetime.fromisoformat(r["timestamp"]).utcoffset() is not None
        assert ("user_id" in r) or ("anonymous_id" in r)
    identify = [r for r in rows if r["event_name"] == "identify"]
    assert all("user_id" in r and "anonymous_id" in r for r in identify)
    signups = [r for r in rows if r["event_name"] == "signup_completed" and not r["event_id"].startswith("ev_bot")]
    assert signups and all("user_id" not in r for r in signups), "sign-ups are anonymous until identify"
    assert any(r["timestamp"].endswith("+02:00") for r in rows) and any(r["timestamp"].endswith("Z") for r in rows)


def test_duplicates_are_exact_resends_and_bots_are_present() -> None:
    rows = generate(DemoParams())
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["event_id"], []).append(r)
    dups = [v for v in by_id.values() if len(v) > 1]
    assert dups and all(len(v) == 2 and v[0] == v[1] for v in dups)
    assert any("bot" in r.get("user_agent", "").lower() for r in rows)


def test_instants_are_in_order() -> None:
    stamps = [datetime.fromisoformat(r["timestamp"]) for r in generate(SMALL)]
    assert all(a <= b for a, b in zip(stamps, stamps[1:]))


# Empirical transitions with demo.yaml's own rules (no engine code): identity stitched via
# identify, duplicates and user-agent bots dropped, 'dropped' when nothing follows.
_STEPS_SQL = """
CREATE TABLE raw AS SELECT * FROM read_json('{path}', format='newline_delimited');
CREATE TABLE alias AS SELECT DISTINCT anonymous_id, user_id FROM raw WHERE event_name = 'identify';
CREATE TABLE ev AS SELECT DISTINCT ON (event_id) coalesce(r.user_id, a.user_id) AS actor, r.event_id, r.platform,
       CAST(r.timestamp AS TIMESTAMPTZ) AS ts, {case} AS state
  FROM raw r LEFT JOIN alias a USING (anonymous_id)
 WHERE NOT regexp_matches(lower(r.user_agent), 'bot|healthcheck') AND coalesce(r.user_id, '') NOT LIKE 'usr_qa%';
CREATE TABLE steps AS SELECT actor, platform, state, min(ts) OVER (PARTITION BY actor) AS t0,
       coalesce(lead(state) OVER (PARTITION BY actor ORDER BY ts, event_id), 'dropped') AS nxt
  FROM ev WHERE state IS NOT NULL;
"""


def _steps(path: Path, demo_yaml: dict) -> duckdb.DuckDBPyConnection:
    whens = " ".join(f"WHEN {s['when']} THEN '{s['name']}'" for s in demo_yaml["states"])
    case = f"CASE {whens} WHEN event_name = 'subscription_started' THEN 'converted' END"
    con = duckdb.connect(str(path.with_suffix(".duckdb")))
    con.execute(_STEPS_SQL.format(path=path, case=case))
    return con


@pytest.fixture(scope="module")
def streams(tmp_path_factory: pytest.TempPathFactory, demo_yaml: dict) -> dict[str, duckdb.DuckDBPyConnection]:
    null_path = tmp_path_factory.mktemp("null") / "null_events.jsonl"
    write_jsonl(generate(DemoParams.null()), null_path)
    planted_copy = tmp_path_factory.mktemp("planted") / "demo_events.jsonl"
    planted_copy.write_bytes(DEMO_EVENTS.read_bytes())
    return {"planted": _steps(planted_copy, demo_yaml), "null": _steps(null_path, demo_yaml)}


def _two_groups(con: duckdb.DuckDBPyConnection, group: str, row: str, col: str) -> tuple[float, float, float]:
    """(p_a, p_b, z) of P(row -> col) between the two values of a boolean group expression."""
    (n1, p1), (n2, p2) = con.execute(
        f"SELECT count(*), avg((nxt = '{col}')::INT) FROM steps WHERE state = '{row}' GROUP BY {group} ORDER BY {group}"
    ).fetchall()
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return p1, p2, float(z)


AFTER = "t0 >= TIMESTAMPTZ '2026-01-29 00:00:00+00'"
# (name, group expression, row, column): planted differences the null stream must not show
EMPIRICAL = [
    ("regression", AFTER, "import_data", "invite_teammate"),
    ("divergence", "platform = 'android'", "feature_used", "help_center"),
    ("plan_control", "platform = 'web'", "create_project", "import_data"),
]


@pytest.mark.parametrize("name,group,row,col", EMPIRICAL, ids=[e[0] for e in EMPIRICAL])
def test_null_stream_shows_no_segment_or_release_difference(streams: dict, name: str, group: str, row: str, col: str) -> None:
    _, _, z = _two_groups(streams["null"], group, row, col)
    assert abs(z) < 3.0, f"{name}: null stream differs (z={z:.2f})"


@pytest.mark.parametrize("name,group,row,col", EMPIRICAL[:2], ids=[e[0] for e in EMPIRICAL[:2]])
def test_planted_stream_shows_the_difference(streams: dict, name: str, group: str, row: str, col: str) -> None:
    p_a, p_b, z = _two_groups(streams["planted"], group, row, col)
    assert abs(z) > 5.0 and abs(p_a - p_b) > 0.15, f"{name}: {p_a:.3f} vs {p_b:.3f} (z={z:.2f})"


# (state, planted statistic SQL, planted at least, null at most)
EMPIRICAL_LEVELS = [
    ("activation_driver", "SELECT avg(c) FILTER (WHERE r = 1) / avg(c) FILTER (WHERE r = 0) FROM (SELECT actor, "
     "max((state = 'import_data')::INT) r, max((state = 'converted')::INT) c FROM steps GROUP BY actor)", 1.8, 1.3),
    ("dropoff_point", "SELECT avg((nxt = 'dropped')::INT) FROM steps WHERE state = 'billing_page'", 0.45, 0.2),
    ("loop", "SELECT avg(n) FROM (SELECT actor, count(*) n FROM steps WHERE state = 'settings' GROUP BY actor)", 2.5, 1.7),
]


@pytest.mark.parametrize("name,sql,planted_min,null_max", EMPIRICAL_LEVELS, ids=[e[0] for e in EMPIRICAL_LEVELS])
def test_planted_levels_show_in_the_stream(streams: dict, name: str, sql: str, planted_min: float, null_max: float) -> None:
    planted = streams["planted"].execute(sql).fetchone()[0]
    null = streams["null"].execute(sql).fetchone()[0]
    assert planted >= planted_min and null <= null_max, f"{name}: planted {planted:.3f}, null {null:.3f}"


def test_every_state_in_the_stream_comes_from_demo_yaml(streams: dict) -> None:
    seen = {s for (s,) in streams["planted"].execute("SELECT DISTINCT state FROM steps").fetchall()}
    assert seen == set(STATES) | {"converted"}


def test_expected_planted_json_is_serialisable() -> None:
    assert json.loads(json.dumps(expected_planted(DemoParams())))[0]["subject"] == "state:import_data"


# --------------------------------------------------------------------------- benchmark streams

@pytest.fixture(scope="module")
def bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_streams", FIXTURES.parent / "benchmarks" / "generate_streams.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_stream_is_deterministic_and_time_ordered(bench_module) -> None:
    a, b = bench_module.simulate(20_000, seed=5), bench_module.simulate(20_000, seed=5)
    assert a.equals(b)
    assert 15_000 < a.num_rows < 25_000
    stamps = a.column("timestamp").to_pylist()
    assert stamps == sorted(stamps) and stamps[0].endswith("Z")
    assert set(a.column("platform").to_pylist()) == set(bench_module.PLATFORMS)
    assert set(a.column("event_name").to_pylist()) <= set(bench_module.STATE_NAMES) | {bench_module.OUTCOME_EVENT}
    assert len(set(a.column("event_name").to_pylist())) > bench_module.N_STATES * 0.8


def test_benchmark_stream_days_spread_the_signups(bench_module) -> None:
    """`days` sets the signup period: the default is the 56-day stream itself, a longer one reaches past it."""
    assert bench_module.simulate(20_000, seed=5, days=bench_module.DAYS).equals(bench_module.simulate(20_000, seed=5))
    import pyarrow.compute as pc

    longer = bench_module.simulate(20_000, seed=5, days=112)
    starts = longer.filter(pc.equal(longer.column("event_name"), "signup")).column("timestamp").to_pylist()
    assert max(starts) > "2026-03-02" > min(starts), "signups spread over 112 days, past the 56-day stream's end"


def test_benchmark_chain_rows_are_distributions(bench_module) -> None:
    P = bench_module.chain(np.random.default_rng(0))
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    assert (P[:, :, 0] == 0).all(), "nothing returns to signup"


def test_benchmark_config_loads(bench_module, tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(bench_module.CONFIG)
    cfg = load_config(path)
    assert cfg.journey("main").start == "signup" and [r.name for r in cfg.releases] == ["r1"]
