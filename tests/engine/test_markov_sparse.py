"""The sparse chain (engine.markov_sparse) gives the dense chain's numbers to 1e-9 wherever both solve,
including loops (diag N per strongly connected component), self-loops, states never left and removal
effects that trap a loop; both refuse the same unsolvable chains."""

from __future__ import annotations

import numpy as np
import pytest

from engine.markov import ChainMetrics
from engine.markov_sparse import SparseChain
from ontology.errors import SingularSystemError

OUTCOMES = ("converted", "dropped")


def random_counts(rng: np.random.Generator, n: int, density: float, exit_share: float) -> dict[tuple[str, str], int]:
    names = [f"s{i}" for i in range(n)]
    counts: dict[tuple[str, str], int] = {}
    for src in names[:-1]:  # the last state is never left: it drops off by the engine's rule
        for dst in names:
            if rng.random() < density:
                counts[(src, dst)] = int(rng.integers(1, 20))
        for o in OUTCOMES:
            if rng.random() < exit_share:
                counts[(src, o)] = int(rng.integers(1, 20))
    return counts


def both(n: int, counts: dict[tuple[str, str], int]) -> tuple[ChainMetrics, SparseChain]:
    args = ([f"s{i}" for i in range(n)], OUTCOMES, counts, "s0", "converted", "dropped")
    return ChainMetrics.from_counts(*args), SparseChain(*args)


def assert_same(dense: ChainMetrics, sp: SparseChain) -> None:
    assert sp.unobserved == dense.unobserved
    np.testing.assert_allclose(sp.B, dense.B, rtol=0, atol=1e-9)
    np.testing.assert_allclose(sp.expected_steps, dense.expected_steps, rtol=1e-9, atol=1e-9)
    for s in dense.states:
        assert sp.expected_visits(s) == pytest.approx(dense.expected_visits(s), rel=1e-9, abs=1e-9)
        assert sp.exit_probability(s) == pytest.approx(dense.exit_probability(s), abs=1e-12)
    for o in OUTCOMES:
        d, s = dense.removal_effects(o), sp.removal_effects(o)
        assert d.keys() == s.keys()
        for state, (absolute, relative) in d.items():
            assert s[state][0] == pytest.approx(absolute, abs=1e-9)
            assert s[state][1] == pytest.approx(relative, abs=1e-9)


@pytest.mark.parametrize(("density", "exit_share"), [(0.15, 0.4), (0.3, 0.1), (0.05, 0.6)],
                         ids=["mixed", "loopy", "sparse"])
def test_sparse_chain_matches_the_dense_chain(density: float, exit_share: float) -> None:
    rng = np.random.default_rng(21)
    solved = looped = 0
    for _ in range(120):
        n = int(rng.integers(2, 40))
        dense, sp = both(n, random_counts(rng, n, density, exit_share))
        try:
            dense.N  # noqa: B018
        except SingularSystemError:
            with pytest.raises(SingularSystemError):
                sp.B  # noqa: B018
            continue
        assert_same(dense, sp)
        solved += 1
        looped += bool((np.diag(dense.N) > 1.0 + 1e-12).any())  # a state on a loop: diag N from a block solve
    assert solved > 60 and looped > 20


def test_loops_and_self_loops_get_the_return_visits_right() -> None:
    counts = {("s0", "s1"): 10, ("s1", "s2"): 8, ("s2", "s1"): 6, ("s2", "s3"): 2, ("s1", "dropped"): 2,
              ("s3", "s3"): 5, ("s3", "converted"): 5, ("s0", "s4"): 3, ("s4", "dropped"): 3}
    dense, sp = both(5, counts)
    assert np.diag(dense.N)[1] > 1.5 and np.diag(dense.N)[3] == pytest.approx(2.0)  # a loop and a self-loop
    np.testing.assert_allclose(sp._diag_n, np.diag(dense.N), rtol=1e-12)
    assert_same(dense, sp)


def test_a_closed_loop_is_refused_by_name() -> None:
    counts = {("s0", "s1"): 3, ("s1", "s2"): 3, ("s2", "s1"): 3, ("s0", "converted"): 1}
    _, sp = both(3, counts)
    with pytest.raises(SingularSystemError, match="states s1, s2 form a closed loop"):
        sp.B  # noqa: B018


def test_bad_counts_are_refused_like_the_dense_chain() -> None:
    for counts, message in (({("converted", "s1"): 1}, "leaves an absorbing outcome"),
                            ({("s0", "s1"): -1}, "negative count"), ({("s0", "s9"): 1}, "not in the chain")):
        with pytest.raises(ValueError, match=message):
            SparseChain(["s0", "s1"], OUTCOMES, counts, "s0", "converted", "dropped")
