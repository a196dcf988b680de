"""engine.uncertainty: bootstrap intervals cover the Figure 2 chain's true values, shrink with data,
are reproducible, and say so when redrawn chains cannot be solved."""

from __future__ import annotations

import numpy as np
import pytest

from engine import uncertainty
from engine.markov import ChainMetrics
from fixtures import paper_chain as pc
from ontology.errors import EngineError

STATES = tuple(sorted(pc.STATES))


def figure2(scale: int) -> ChainMetrics:
    return ChainMetrics.from_counts(STATES, pc.OUTCOMES, pc.exact_counts(scale), pc.START, "converted", "dropped")


def simulated_counts(journeys: int, rng: np.random.Generator) -> dict[tuple[str, str], int]:
    """Transition counts of `journeys` walks of the Figure 2 chain, vectorised over journeys (one step at a time)."""
    targets = pc.STATES + pc.OUTCOMES
    cum = np.array([np.cumsum([pc.FIGURE2[s].get(t, 0.0) for t in targets]) for s in pc.STATES])
    cum[:, -1] = 1.0
    counts = np.zeros((len(pc.STATES), len(targets)), dtype=np.int64)
    current = np.zeros(journeys, dtype=int)  # every journey starts at sign_up (index 0)
    while len(current):
        nxt = (rng.random(len(current))[:, None] > cum[current]).sum(axis=1)
        np.add.at(counts, (current, nxt), 1)
        current = nxt[nxt < len(pc.STATES)]
    return {(pc.STATES[i], targets[j]): int(counts[i, j]) for i, j in zip(*np.nonzero(counts))}


def test_intervals_hold_the_paper_values_and_narrow_as_data_grows() -> None:
    widths = []
    for scale in (1_000, 100_000):
        found = uncertainty.bootstrap(figure2(scale), seed=7, replicates=300)
        low, high = found.absorption[pc.START]["converted"]
        assert low <= pc.EXPECTED_ABSORPTION_CONVERTED[pc.START] <= high
        for state, effect in pc.EXPECTED_REMOVAL_EFFECT.items():
            low_r, high_r = found.removal_effect[state]["converted"]
            assert low_r - 1e-4 <= effect <= high_r + 1e-4
        widths.append(high - low)
        assert found.failed_replicates == 0
        assert pc.START not in found.removal_effect  # the start state cannot be removed
    assert widths[1] < widths[0] / 5  # 100x the data: about 10x narrower


def test_ranking_by_removal_effect_is_reported_with_its_stability() -> None:
    ranks = uncertainty.bootstrap(figure2(100_000), seed=3, replicates=200).removal_rank
    assert ranks["import_data"] == {"observed": 1, "interval": (1, 1), "share_ranked_first": 1.0}
    assert ranks["feature_used"]["observed"] == 2 and ranks["invite_teammate"]["observed"] == 3


def test_95_percent_intervals_cover_the_true_values_on_simulated_data() -> None:
    """30 simulated datasets of 1,500 journeys: the true B and removal effect fall inside about 95 % of the time."""
    rng = np.random.default_rng(2026)
    covered_b = covered_removal = 0
    datasets = 30
    for k in range(datasets):
        chain = ChainMetrics.from_counts(STATES, pc.OUTCOMES, simulated_counts(1_500, rng), pc.START, "converted", "dropped")
        found = uncertainty.bootstrap(chain, seed=k, replicates=200)
        low, high = found.absorption[pc.START]["converted"]
        covered_b += low <= pc.EXPECTED_ABSORPTION_CONVERTED[pc.START] <= high
        low, high = found.removal_effect["import_data"]["converted"]
        covered_removal += low <= pc.EXPECTED_REMOVAL_EFFECT["import_data"] <= high
        assert high - low < 0.1  # informative, not trivially wide
    assert covered_b >= 25 and covered_removal >= 25  # ≥ 83 %; a wrong interval (e.g. no resampling) covers far less


def test_same_seed_same_intervals_and_the_seed_comes_from_the_snapshot_id() -> None:
    chain = figure2(2_000)
    first = uncertainty.bootstrap(chain, seed=uncertainty.seed_for("snap-a"), replicates=50)
    again = uncertainty.bootstrap(chain, seed=uncertainty.seed_for("snap-a"), replicates=50)
    other = uncertainty.bootstrap(chain, seed=uncertainty.seed_for("snap-b"), replicates=50)
    assert first == again
    assert first.absorption != other.absorption
    assert 0 <= uncertainty.seed_for("snap-a") < 2 ** 63 and uncertainty.seed_for("snap-a") != uncertainty.seed_for("snap-b")


def _loops(counts: dict[tuple[str, str], int]) -> ChainMetrics:
    states = sorted({a for a, _ in counts} | {b for _, b in counts if b not in ("converted", "dropped")})
    return ChainMetrics.from_counts(states, ("converted", "dropped"), counts, "s", "converted", "dropped")


def test_a_redraw_that_loses_every_exit_of_a_loop_drops_off_and_is_counted() -> None:
    """A loop whose only exit was seen once: about e^-1 of the redraws never leave it. They drop off (the engine's
    rule for a state never left) instead of being left out, which would keep only redraws that kept the exit."""
    chain = _loops({("s", "a"): 50, ("s", "dropped"): 50, ("a", "a"): 2_000, ("a", "converted"): 1})
    found = uncertainty.bootstrap(chain, seed=1, replicates=400)
    assert 0.25 * 400 < found.redirected_replicates < 0.5 * 400 and found.failed_replicates == 0
    low, high = found.absorption["s"]["converted"]
    assert low == 0.0 and high > chain.absorption("s", "converted")  # the lost-exit redraws are in the interval
    assert any("lost every exit of a loop" in note for note in found.notes)


def test_too_many_unsolvable_replicates_give_no_interval_and_say_why() -> None:
    """An exit seen twice in 1.5e12 stays: redrawn once, the loop is near-singular (no solution); over 5 % fail."""
    chain = _loops({("s", "a"): 50, ("s", "dropped"): 50, ("a", "a"): 1_500_000_000_000, ("a", "converted"): 2})
    found = uncertainty.bootstrap(chain, seed=1, replicates=400)
    assert found.failed_replicates > 0.05 * 400
    assert found.absorption is None and found.removal_rank is None
    block = uncertainty.to_json(found, chain.states)
    assert block["states"] is None and any("could not be solved" in note for note in block["notes"])


def test_a_chain_with_one_state_gets_intervals_and_no_ranking() -> None:
    chain = _loops({("s", "converted"): 3, ("s", "dropped"): 7})
    found = uncertainty.bootstrap(chain, seed=2, replicates=100)
    low, high = found.absorption["s"]["converted"]
    assert 0.0 <= low < 0.3 < high <= 1.0
    assert found.removal_effect == {} and found.removal_rank is None
    assert uncertainty.to_json(found, chain.states)["states"][0]["removal_rank"] is None


def test_no_ranking_when_conversion_is_never_reached() -> None:
    chain = _loops({("s", "a"): 5, ("s", "b"): 5, ("a", "dropped"): 5, ("b", "dropped"): 5})
    found = uncertainty.bootstrap(chain, seed=2, replicates=50)
    assert found.removal_rank is None
    assert any("never reached" in note for note in found.notes)


def test_ties_for_first_share_the_replicate() -> None:
    """Two mirror-image states: each is first in about half the redraws, and the shares add up to one."""
    chain = _loops({("s", "a"): 500, ("s", "b"): 500, ("a", "converted"): 200, ("a", "dropped"): 300,
                    ("b", "converted"): 200, ("b", "dropped"): 300})
    ranks = uncertainty.bootstrap(chain, seed=5, replicates=300).removal_rank
    assert ranks["a"]["observed"] == ranks["b"]["observed"] == 1
    assert ranks["a"]["share_ranked_first"] + ranks["b"]["share_ranked_first"] == pytest.approx(1.0)
    assert 0.3 < ranks["a"]["share_ranked_first"] < 0.7


def test_states_never_left_get_no_interval_and_thin_rows_are_named() -> None:
    chain = _loops({("s", "a"): 400, ("s", "b"): 2, ("a", "converted"): 100, ("a", "dropped"): 300})
    found = uncertainty.bootstrap(chain, seed=3, replicates=100)
    assert "b" not in found.absorption and "b" not in found.removal_effect  # b was never left: no data
    assert found.transitions_out == {"a": 400, "b": 0, "s": 402}
    assert any("never left" in note and "b" in note for note in found.notes)
    thin = _loops({("s", "a"): 400, ("s", "b"): 20, ("a", "converted"): 100, ("a", "dropped"): 300,
                   ("b", "converted"): 5, ("b", "dropped"): 15})
    assert any("fewer than 30" in note and note.endswith(": b")
               for note in uncertainty.bootstrap(thin, seed=3, replicates=50).notes)


def test_work_over_the_limit_is_refused_with_the_number_that_fits() -> None:
    with pytest.raises(EngineError, match=r"ask for at most \d+"):
        uncertainty.bootstrap(figure2(1_000), seed=0, replicates=100_000, max_seconds=0.01)


@pytest.mark.parametrize(("replicates", "level"), [(1, 0.95), (10, 1.0), (10, 0.0)])
def test_bad_settings_are_refused(replicates: int, level: float) -> None:
    with pytest.raises(ValueError):
        uncertainty.bootstrap(figure2(100), seed=0, replicates=replicates, level=level)
