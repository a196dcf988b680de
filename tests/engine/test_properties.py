"""Hypothesis properties of the chain maths and of snapshots built from arbitrary journeys."""

from __future__ import annotations

import itertools
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.config import Config, JourneyConfig, Outcome, Segment, SnapshotConfig
from engine.markov import ChainMetrics
from engine.snapshot import build_snapshots
from fixtures import paper_chain as pc
from ontology.model import canonical_json

OUTCOMES = ("converted", "dropped")


@st.composite
def count_chains(draw) -> ChainMetrics:
    """Random absorbing chains: every state has at least one count into some outcome."""
    n = draw(st.integers(1, 6))
    states = [f"s{i}" for i in range(n)]
    counts = {}
    for src in states:
        for dst in states + list(OUTCOMES):
            c = draw(st.integers(0, 30))
            if c:
                counts[(src, dst)] = c
        exit_to = draw(st.sampled_from(OUTCOMES))
        counts[(src, exit_to)] = counts.get((src, exit_to), 0) + draw(st.integers(1, 30))
    return ChainMetrics.from_counts(states, OUTCOMES, counts, "s0", "converted", "dropped")


@settings(max_examples=150, deadline=None)
@given(count_chains())
def test_chain_rows_are_distributions(m: ChainMetrics) -> None:
    np.testing.assert_allclose(m.P.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(m.B.sum(axis=1), 1.0, atol=1e-9)
    assert (m.B >= -1e-12).all() and (m.B <= 1 + 1e-12).all()
    assert (m.expected_steps >= 1 - 1e-9).all()  # every transient state takes at least one step


@settings(max_examples=150, deadline=None)
@given(count_chains())
def test_removal_effects_are_bounded(m: ChainMetrics) -> None:
    for outcome in OUTCOMES:
        for state, (absolute, relative) in m.removal_effects(outcome).items():
            assert -1 - 1e-9 <= absolute <= 1 + 1e-9, (state, outcome, absolute)
            if outcome == "dropped":
                assert relative <= 1e-9  # redirecting to drop-off only ever adds drop-off mass
            else:
                assert -1e-9 <= relative <= 1 + 1e-9
    # absolute effects over the outcomes cancel: B and B' rows both sum to 1
    for state in m.removal_effects("converted"):
        assert sum(m.removal_effect(state, o) for o in OUTCOMES) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(count_chains(), st.data())
def test_batched_removal_equals_rebuilding_the_chain(m: ChainMetrics, data) -> None:
    """The stacked solve gives what an independent rebuild without the state gives (both definitions)."""
    if len(m.states) < 2:
        return
    state = data.draw(st.sampled_from(m.states[1:]))
    names = m.states + m.outcomes
    kept = [s for s in m.states if s != state]
    cut, redirect = {}, {}
    for i, src in enumerate(m.states):
        for j, dst in enumerate(names):
            c = int(m.counts[i, j])
            if not c or src == state:
                continue
            if dst != state:
                cut[(src, dst)] = c
            key = (src, "dropped" if dst == state else dst)
            redirect[key] = redirect.get(key, 0) + c
    renormalised = ChainMetrics.from_counts(kept, OUTCOMES, cut, "s0", "converted", "dropped")
    redirected = ChainMetrics.from_counts(kept, OUTCOMES, redirect, "s0", "converted", "dropped")
    for o in OUTCOMES:
        base = m.absorption("s0", o)
        assert m.removal_effect(state, o) == pytest.approx(base - renormalised.absorption("s0", o), abs=1e-9)
        expected_rel = (base - redirected.absorption("s0", o)) / base if base > 0 else 0.0
        assert m.removal_effect_relative(state, o) == pytest.approx(expected_rel, abs=1e-9)


# ---- snapshots of arbitrary journeys ---------------------------------------------------------
JOURNEY = JourneyConfig(name="j", start="s", level="raw", window_s=86400,
                        outcomes=(Outcome("converted", when="event_name = 'paid'"), Outcome("dropped", inactive_for_s=3600)))
CFG = Config(source="x", journeys=(JOURNEY,), segments=(Segment("plan", column="plan"),),
             snapshots=SnapshotConfig(period_s=86400, top_paths=3))

journey_st = st.tuples(
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=5),  # steps after the start state
    st.sampled_from(["converted", "dropped", None]),           # None: censored
    st.integers(0, 3),                                          # start day
    st.sampled_from(["free", "pro"]),
)


def _build(tmp_dir, journeys: list[tuple], order: list[int]):
    """Journey tables from generated journeys, inserted in `order`, then all snapshots."""
    con = duckdb.connect(str(tmp_dir / f"p{next(_COUNTER)}.duckdb"))
    con.execute(pc.TABLES_SQL)
    jrows, srows = [], []
    for i in order:
        steps, outcome, day, plan = journeys[i]
        jid = f"J{i:03d}"
        censored = outcome is None or day == 3  # day-3 journeys are younger than the window: censored
        jrows.append({"jid": jid, "day": day, "outcome": None if censored else outcome, "censored": censored,
                      "n": len(steps) + 1, "plan": plan})
        srows += [{"jid": jid, "step": k, "state": s, "day": day} for k, s in enumerate(["s", *steps])]
    con.register("gj", pa.Table.from_pylist(jrows))
    con.register("gs", pa.Table.from_pylist(srows, schema=pa.schema([("jid", pa.string()), ("step", pa.int64()),
                                                                      ("state", pa.string()), ("day", pa.int64())])))
    con.execute("""INSERT INTO journeys SELECT 'j', '', jid, 'u' || jid, TIMESTAMP '2026-01-05' + to_days(day::INTEGER),
                   TIMESTAMP '2026-01-05 06:00' + to_days(day::INTEGER), outcome, censored, n, MAP {'plan': plan} FROM gj""")
    con.execute("""INSERT INTO journey_steps SELECT 'j', jid, step, state, TIMESTAMP '2026-01-05' + to_days(day::INTEGER)
                   + to_seconds(step::INTEGER), jid || '-' || step FROM gs""")
    snaps = build_snapshots(con, CFG, JOURNEY, "h", "t", data_end=datetime(2026, 1, 8, 12))
    con.close()
    return snaps


_COUNTER = itertools.count()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(journey_st, min_size=1, max_size=25), st.randoms(use_true_random=False))
def test_snapshot_properties(tmp_path, journeys: list[tuple], rnd) -> None:
    order = list(range(len(journeys)))
    snaps = _build(tmp_path, journeys, order)
    rnd.shuffle(order)
    shuffled = _build(tmp_path, journeys, order)
    assert [s.payload_json for s in snaps] == [s.payload_json for s in shuffled]  # row order changes nothing
    for snap in snaps:
        m = snap.metrics
        np.testing.assert_allclose(m.P.sum(axis=1), 1.0, atol=1e-9)
        np.testing.assert_allclose(m.B.sum(axis=1), 1.0, atol=1e-9)
        assert sum(snap.payload["outcome_counts"].values()) == snap.completed
        metrics = snap.to_metrics_json()
        canonical_json(metrics)  # raises on NaN / infinity
        for row in metrics["states"]:
            assert 0.0 <= row["reach"] <= 1.0
            for o in m.outcomes:
                p = row["p_outcome_given_reached"][o]
                assert p is None or 0.0 <= p <= 1.0
                assert row["lift"][o] is None or row["lift"][o] >= 0.0
                for key in ("removal_effect", "removal_effect_relative"):
                    value = row[key][o]
                    assert value is None or (key == "removal_effect_relative" and o == "dropped") or -1.0 <= value <= 1.0
        if snap.completed:  # everyone reaches the start state, so P(o | reached start) is the overall rate
            for o in m.outcomes:
                assert snap.p_outcome_given_reached("s", o) == pytest.approx(snap.payload["outcome_counts"].get(o, 0) / snap.completed)
