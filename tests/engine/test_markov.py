"""ChainMetrics: closed-form values of the exact Figure 2 chain, both removal definitions
checked against independent brute-force recomputation, and the guards."""

from __future__ import annotations

import numpy as np
import pytest

from engine.markov import ChainMetrics
from fixtures import paper_chain as pc
from ontology.errors import SingularSystemError


@pytest.fixture(scope="module")
def exact() -> ChainMetrics:
    return ChainMetrics.from_counts(sorted(pc.STATES), pc.OUTCOMES, pc.exact_counts(), pc.START, "converted", "dropped")


def chain(counts: dict[tuple[str, str], int], start: str = "s", outcomes=("converted", "dropped")) -> ChainMetrics:
    states = sorted({a for a, _ in counts} | {b for _, b in counts if b not in outcomes} | {start})
    return ChainMetrics.from_counts(states, outcomes, counts, start, "converted", "dropped")


@pytest.mark.parametrize("state", list(pc.EXPECTED_ABSORPTION_CONVERTED), ids=str)
def test_absorption_matches_paper_figure_3(exact: ChainMetrics, state: str) -> None:
    assert round(exact.absorption(state, "converted"), 4) == pc.EXPECTED_ABSORPTION_CONVERTED[state]
    assert exact.absorption(state, "converted") + exact.absorption(state, "dropped") == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("state", list(pc.EXPECTED_STEPS), ids=str)
def test_expected_steps_match_paper(exact: ChainMetrics, state: str) -> None:
    assert round(float(exact.expected_steps[exact.states.index(state)]), 4) == pc.EXPECTED_STEPS[state]


@pytest.mark.parametrize("state", list(pc.EXPECTED_REMOVAL_EFFECT), ids=str)
def test_removal_effect_matches_paper_figure_4(exact: ChainMetrics, state: str) -> None:
    assert round(exact.removal_effect(state, "converted"), 4) == pc.EXPECTED_REMOVAL_EFFECT[state]


def test_exact_matrices_are_stochastic_and_consistent(exact: ChainMetrics) -> None:
    np.testing.assert_allclose(exact.P.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(exact.B.sum(axis=1), 1.0, atol=1e-12)
    # N solves (I - Q) N = I
    np.testing.assert_allclose((np.eye(4) - exact.Q) @ exact.N, np.eye(4), atol=1e-12)
    assert exact.probability("sign_up", "feature_used") == pytest.approx(0.52)
    assert exact.exit_probability("feature_used") == pytest.approx(0.41)
    # expected visits from sign_up: import_data is reached w.p. B(sign_up -> import) and never revisited
    assert exact.expected_visits("sign_up") == pytest.approx(1 / (1 - 0.52 * 0.15))
    assert exact.expected_visits("import_data") == pytest.approx(0.52 * 0.44 / (1 - 0.52 * 0.15))


def _brute_renormalised(m: ChainMetrics, removed: str, outcome: str) -> float:
    """Independent recomputation: drop every edge touching `removed`, rebuild from counts."""
    names = m.states + m.outcomes
    counts = {}
    for i, src in enumerate(m.states):
        for j, dst in enumerate(names):
            if m.counts[i, j] and removed not in (src, dst):
                counts[(src, dst)] = int(m.counts[i, j])
    states = [s for s in m.states if s != removed]
    after = ChainMetrics.from_counts(states, m.outcomes, counts, m.start, m.conversion_outcome, m.dropoff_outcome)
    return m.absorption(m.start, outcome) - after.absorption(m.start, outcome)


def _brute_redirect(m: ChainMetrics, removed: str, outcome: str) -> float:
    """Independent recomputation: every edge into `removed` goes to the drop-off outcome."""
    names = m.states + m.outcomes
    counts: dict[tuple[str, str], int] = {}
    for i, src in enumerate(m.states):
        for j, dst in enumerate(names):
            if m.counts[i, j] and src != removed:
                key = (src, m.dropoff_outcome if dst == removed else dst)
                counts[key] = counts.get(key, 0) + int(m.counts[i, j])
    states = [s for s in m.states if s != removed]
    after = ChainMetrics.from_counts(states, m.outcomes, counts, m.start, m.conversion_outcome, m.dropoff_outcome)
    base = m.absorption(m.start, outcome)
    return (base - after.absorption(m.start, outcome)) / base


@pytest.mark.parametrize("outcome", ["converted", "dropped"])
@pytest.mark.parametrize("state", ["feature_used", "import_data", "invite_teammate"])
def test_both_removal_definitions_match_brute_force(exact: ChainMetrics, state: str, outcome: str) -> None:
    assert exact.removal_effect(state, outcome) == pytest.approx(_brute_renormalised(exact, state, outcome), abs=1e-12)
    assert exact.removal_effect_relative(state, outcome) == pytest.approx(_brute_redirect(exact, state, outcome), abs=1e-12)
    assert exact.removal_effects(outcome)[state] == (exact.removal_effect(state, outcome),
                                                     exact.removal_effect_relative(state, outcome))


def test_removal_effects_exclude_start_and_refuse_it(exact: ChainMetrics) -> None:
    assert set(exact.removal_effects("converted")) == {"feature_used", "import_data", "invite_teammate"}
    with pytest.raises(ValueError, match="start state 'sign_up' cannot be removed"):
        exact.removal_effect("sign_up", "converted")


def test_predecessor_whose_only_edge_went_to_removed_state_drops_off() -> None:
    # s -> a only; a -> x only; x converts. Removing x leaves a with no edge: its mass drops off.
    m = chain({("s", "a"): 10, ("s", "dropped"): 10, ("a", "x"): 10, ("x", "converted"): 10})
    assert m.absorption("s", "converted") == pytest.approx(0.5)
    assert m.removal_effect("x", "converted") == pytest.approx(0.5)
    assert m.removal_effect("x", "dropped") == pytest.approx(-0.5)


def test_removal_that_traps_a_loop_sends_it_to_drop_off() -> None:
    # a <-> b loop whose only exit is x: removing x leaves a closed loop, which must drop off, not blow up
    m = chain({("s", "a"): 10, ("a", "b"): 10, ("b", "a"): 5, ("b", "x"): 5, ("x", "converted"): 5})
    assert m.absorption("s", "converted") == pytest.approx(1.0)
    assert m.removal_effect("x", "converted") == pytest.approx(1.0)
    assert m.removal_effect_relative("x", "converted") == pytest.approx(1.0)


def test_renormalised_removal_can_raise_conversion() -> None:
    # skipping a dead-end state renormalises the predecessor towards converting: a negative effect
    m = chain({("s", "d"): 50, ("s", "converted"): 50, ("d", "dropped"): 50})
    assert m.removal_effect("d", "converted") == pytest.approx(0.5 - 1.0)
    assert m.removal_effect_relative("d", "converted") == pytest.approx(0.0)


def test_state_without_outgoing_counts_drops_off() -> None:
    m = ChainMetrics.from_counts(["a", "s"], ["converted", "dropped"], {("s", "a"): 3, ("s", "converted"): 1},
                                 "s", "converted", "dropped")
    assert m.unobserved == ("a",)
    assert m.exit_probability("a") == 1.0
    assert m.absorption("s", "converted") == pytest.approx(0.25)
    np.testing.assert_allclose(m.B.sum(axis=1), 1.0)


@pytest.mark.parametrize(
    ("counts", "match"),
    [
        pytest.param({("s", "a"): 5, ("s", "dropped"): 5, ("a", "b"): 3, ("b", "a"): 3}, r"states a, b form a closed loop",
                     id="closed-loop"),
        pytest.param({("s", "s"): 7}, r"states s form a closed loop", id="self-loop-only"),
        pytest.param({("s", "a"): 1, ("a", "b"): 10**15, ("b", "a"): 10**15, ("b", "dropped"): 1},
                     r"near-singular .* states a, b almost never leave", id="near-singular"),
    ],
)
def test_singular_system_names_the_loop(counts: dict, match: str) -> None:
    m = chain(counts)
    with pytest.raises(SingularSystemError, match=match) as info:
        m.B  # noqa: B018
    assert "collapse_self_loops" in str(info.value) or "outcome" in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"start": "nope"}, "start state 'nope'", id="unknown-start"),
        pytest.param({"counts": {("converted", "s"): 1}}, "leaves an absorbing outcome", id="from-outcome"),
        pytest.param({"counts": {("s", "zzz"): 1}}, "not in the chain", id="unknown-target"),
        pytest.param({"counts": {("s", "dropped"): -1}}, "negative count", id="negative"),
        pytest.param({"dropoff": "gone"}, "drop-off outcome 'gone'", id="unknown-dropoff"),
    ],
)
def test_caller_misuse_is_value_error(kwargs: dict, match: str) -> None:
    args = {"counts": {("s", "dropped"): 1}, "start": "s", "dropoff": "dropped"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ChainMetrics.from_counts(["s"], ["converted", "dropped"], args["counts"], args["start"], "converted", args["dropoff"])


def test_lookups_name_unknown_things(exact: ChainMetrics) -> None:
    with pytest.raises(ValueError, match="unknown state 'ghost'"):
        exact.absorption("ghost", "converted")
    with pytest.raises(ValueError, match="unknown outcome 'won'"):
        exact.absorption("sign_up", "won")


def test_many_states_batched_removal_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    names = [f"s{i:02d}" for i in range(25)]
    counts = {}
    for src in names:
        for dst in rng.choice(names + ["converted", "dropped"], size=4, replace=False):
            counts[(src, str(dst))] = int(rng.integers(1, 50))
        counts[(src, "dropped")] = counts.get((src, "dropped"), 0) + 1
    m = ChainMetrics.from_counts(names, ["converted", "dropped"], counts, "s00", "converted", "dropped")
    effects = m.removal_effects("converted")
    for state in ("s03", "s11", "s24"):
        assert effects[state][0] == pytest.approx(_brute_renormalised(m, state, "converted"), abs=1e-10)
        assert effects[state][1] == pytest.approx(_brute_redirect(m, state, "converted"), abs=1e-10)
