"""Conversions at stake: each counterfactual re-solves the chain the way its docstring says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from detector_builders import make_cfg, snap
from test_honest_detectors import LOGIN

from detectors import stake
from detectors.defaults import DropoffConfig
from detectors.margins import margins
from detectors.runner import run_detectors
from detectors.synthetic import chain_payload
from detectors.view import SnapView
from engine import scoring
from engine.markov import ChainMetrics
from engine.snapshot import Snapshot
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


def _login_findings() -> dict[str, Any]:
    payload = chain_payload(LOGIN, journeys=20_000, start="welcome", conversion="passed", dropoff="timed_out")
    run = run_detectors([Snapshot.from_payload(payload)], make_cfg())
    return {(f.type, f.subject): f for f in run.findings}, SnapView(Snapshot.from_payload(payload))


def test_loss_stake_counts_lost_journeys_leaving_right_after_the_state():
    found, view = _login_findings()
    f = found["dropoff_point", "state:welcome"]
    s, ev = f.evidence["at_stake"], f.evidence
    assert (s["measure"], s["outcome"], s["outcomes"]) == ("losses", "lost or timed_out", ["lost", "timed_out"])
    lost_here = view.count("welcome", "lost") + view.count("welcome", "timed_out")
    assert ev["exits"] == lost_here
    assert s["per_journey"] == pytest.approx(lost_here / view.completed, abs=1e-6)
    assert s["per_week"] == pytest.approx(s["per_journey"] * s["journeys_per_week"], rel=1e-5)
    assert s["share"] == pytest.approx(ev["loss_share"], abs=1e-5)  # ranked as a share of all losses
    assert s["low"] < s["per_week"] < s["high"] and s["direction"] == "more"
    assert "protect" not in s


def test_losses_and_conversions_rank_on_their_own_shares():
    found, _ = _login_findings()
    loss = found["dropoff_point", "state:welcome"]
    # it qualifies by its share of all losses, not by its per-move exit rate: the confidence follows that route
    assert loss.evidence["exit_probability"] < DropoffConfig().min_exit
    assert min(margins(loss, DropoffConfig(), 50)) > 3  # so the exit-rate floor does not zero its confidence
    assert scoring.feed_components(loss)["magnitude"] == pytest.approx(loss.evidence["loss_share"], abs=1e-5)
    driver = next(f for f in found.values() if f.type == "activation_driver")
    s = driver.evidence["at_stake"]
    assert scoring.feed_components(driver)["magnitude"] == pytest.approx(
        abs(s["per_journey"]) / s["baseline_per_journey"], abs=1e-6)


def test_a_state_whose_removal_raises_conversion_is_not_to_protect():
    # Journeys reaching "detour" convert 2.25 times as often as the rest (they are the engaged ones),
    # yet in the chain "offer" converts more often when it cannot send journeys to the detour.
    probs = {"sign_up": {"offer": 0.5, "dropped": 0.5},
             "offer": {"detour": 0.5, "converted": 0.3, "dropped": 0.2}, "detour": {"converted": 0.45, "dropped": 0.55}}
    run = run_detectors([snap(probs, journeys=50_000)], make_cfg())
    by = {f.subject: f for f in run.findings if f.type in stake.REMOVAL_TYPES}
    s = by["state:detour"].evidence["at_stake"]
    assert s["per_journey"] == pytest.approx(0.2625 - 0.3, abs=0.01)  # B observed − B without the detour
    assert s["per_journey"] < 0 and s["protect"] is False and s["direction"] == "fewer"
    f = by["state:detour"]
    assert scoring.feed_components(f)["magnitude"] == pytest.approx(-s["share"], abs=1e-6)  # |stake|, sign kept


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


def test_chains_over_the_redraw_cap_keep_their_point_estimate_without_redraws(monkeypatch):
    """Issue #18 defect 5: 40 redraws of a 5,000-state chain need 7.4 GB per copy. Above the redraw cap a
    finding keeps the same point estimate (one solve) with its interval collapsed onto it; above the solve
    cap it gets no at_stake, as an unsolvable chain gets none."""
    def drivers() -> list:
        return [f for f in run_detectors([snap(FIGURE2, journeys=20_000)], make_cfg()).findings
                if f.type == "activation_driver"]

    full = {f.subject: f.evidence["at_stake"] for f in drivers()}
    assert full and all(s["low"] < s["high"] for s in full.values())
    monkeypatch.setattr(stake, "MAX_CHAIN_STATES", len(FIGURE2) - 1)
    capped = {f.subject: f.evidence["at_stake"] for f in drivers()}
    assert capped.keys() == full.keys()
    for subject, s in capped.items():
        assert s["per_week"] == full[subject]["per_week"]
        assert s["low"] == s["per_week"] == s["high"]
    monkeypatch.setattr(stake, "MAX_POINT_STATES", len(FIGURE2) - 1)
    assert all("at_stake" not in f.evidence for f in drivers())
