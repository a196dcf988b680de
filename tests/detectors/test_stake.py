"""Conversions at stake: each counterfactual re-solves the chain the way its docstring says."""

from __future__ import annotations

import numpy as np
import pytest
from detector_builders import make_cfg, snap

from detectors import stake
from detectors.runner import run_detectors
from engine.markov import ChainMetrics
from fixtures.paper_chain import FIGURE2

LOOP = {  # b loops on itself (lifecycle-like repeats) and c sends journeys back to a (real returns)
    "a": {"b": 0.6, "dropped": 0.4},
    "b": {"b": 0.5, "c": 0.3, "dropped": 0.2},
    "c": {"a": 0.4, "converted": 0.4, "dropped": 0.2},
}


def _chain(probs: dict, scale: int = 100_000) -> ChainMetrics:
    counts = {(s, d): round(p * scale) for s, row in probs.items() for d, p in row.items()}
    return ChainMetrics.from_counts(tuple(probs), ("converted", "dropped"), counts, "a", "converted", "dropped")


def test_absorbed_equals_the_engines_b():
    chain = _chain(LOOP)
    assert stake._absorbed(chain.counts, chain) == pytest.approx(chain.absorption("a", "converted"), abs=1e-12)


def test_doubled_chain_keeps_b_and_self_loops_are_worth_nothing():
    chain = _chain({**LOOP, "c": {"converted": 0.6, "dropped": 0.4}})  # b's only returns are its self-loop
    k = chain.states.index("b")
    doubled = stake._doubled(chain.counts, chain, k)
    base = stake._absorbed(doubled.counts, doubled)
    assert base == pytest.approx(chain.absorption("a", "converted"), abs=1e-12)
    delta_b = base - stake._returns_absorbed(chain.counts, chain, k)
    assert delta_b == pytest.approx(0.0, abs=1e-12)  # a self-loop never changes where journeys end


def test_returns_are_removed_with_the_papers_renormalisation():
    chain = _chain(LOOP)
    base = stake._absorbed(chain.counts, chain)
    delta_a = base - stake._returns_absorbed(chain.counts, chain, chain.states.index("a"))
    assert base == pytest.approx(0.144 / 0.856, abs=1e-9)  # B(a) = 0.6·0.6·(0.4 + 0.4·B(a))
    no_return = 0.6 * (0.3 / 0.5) * (0.4 / 0.6)  # c's row renormalised without its edge back to a
    assert delta_a == pytest.approx(base - no_return, abs=1e-9)
    assert delta_a < 0  # journeys that go back to a convert less than those c sends on


def test_removal_counterfactual_is_the_papers_removal_effect():
    run = run_detectors([snap(FIGURE2, journeys=100_000)], make_cfg())
    drivers = [f for f in run.findings if f.type == "activation_driver"]
    assert len(drivers) == 3
    for f in drivers:
        assert f.evidence["at_stake"]["per_journey"] == pytest.approx(f.evidence["removal_effect"], abs=1e-6)


def test_dropoff_counterfactual_brings_exits_down_to_the_baseline():
    chain = _chain(LOOP)
    cf = stake._exits_at(["a"], "dropped", 0.25)
    edited = cf(chain.counts.copy(), chain)
    row = edited[chain.states.index("a")]
    assert row[len(chain.states) + 1] / row.sum() == pytest.approx(0.25, abs=1e-12)
    delta = stake._absorbed(chain.counts, chain) - stake._edited(cf)(chain.counts, chain)
    assert delta < 0  # the excess exits go with fewer conversions


def test_batched_solve_equals_one_by_one():
    chain = _chain(LOOP)
    stack = np.stack([chain.counts, chain.counts * 2, np.roll(chain.counts, 1, axis=0)])
    batched = stake._absorbed(stack, chain)
    assert batched == pytest.approx([stake._absorbed(c, chain) for c in stack], abs=1e-12)


def test_interval_is_deterministic_and_brackets_the_point():
    run1 = run_detectors([snap(FIGURE2, journeys=20_000)], make_cfg())
    run2 = run_detectors([snap(FIGURE2, journeys=20_000)], make_cfg())
    s1 = [f.evidence["at_stake"] for f in run1.findings]
    assert s1 == [f.evidence["at_stake"] for f in run2.findings]
    for s in s1:
        assert s["low"] <= s["per_week"] <= s["high"]
        assert np.isfinite(s["in_window"])
