"""The absorbing chain of engine.markov for thousands of states, without an n × n matrix (issue #18 defect 5).

Why: the dense chain forms N = (I − Q)⁻¹, O(n³) time and n² memory (about 37 s and 200 MB at 5,000
states), while a journey chain has a few edges per state. This one factorises the sparse I − Q once
(scipy.sparse.linalg.splu) and solves only what `snapshot --format json` shows:

* B = (I − Q)⁻¹ R and t = (I − Q)⁻¹ 1: one solve each with n_o and 1 right-hand sides;
* N[start, ·]: one transposed solve;
* diag N, for the probability of ever reaching a state (N[start, k] / N[k, k]): a walk that returns
  to k never leaves k's strongly connected component, so N[k, k] is the diagonal of (I − Q_C)⁻¹ for
  that component alone: 1 / (1 − Q[k, k]) for a state on no loop, a small solve per loop;
* the paper removal effect of state k: the same Sherman–Morrison formula as the dense chain
  (engine.markov.ChainBase), fed by the columns of N of k and of its predecessors (one solve each),
  for the candidate states of engine.state_metrics only.

Same rules as the dense chain (states never left drop off; a loop with no way out or a near-singular
system raises SingularSystemError), and the same numbers to rounding (tests compare to 1e-9).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph
from scipy.sparse.linalg import LinearOperator, onenormest, splu

from engine.markov import COND_LIMIT, ChainBase, _check_names, indexed_counts, refuse_trapped
from ontology.errors import SingularSystemError

DIAG_BLOCK = 256  # identity columns per solve when a loop's diagonal of N is needed


class SparseChain(ChainBase):
    """An absorbing chain from counts, held as sparse matrices; derived quantities computed once, lazily."""

    def __init__(self, states: Sequence[str], outcomes: Sequence[str], counts: Mapping[tuple[str, str], int],
                 start: str, conversion_outcome: str, dropoff_outcome: str) -> None:
        self.states, self.outcomes = tuple(states), tuple(outcomes)
        _check_names(self.states, self.outcomes, start, conversion_outcome, dropoff_outcome)
        self.start, self.conversion_outcome, self.dropoff_outcome = start, conversion_outcome, dropoff_outcome
        self.counts = _count_matrix(self.states, self.outcomes, counts)
        totals = np.asarray(self.counts.sum(axis=1)).ravel()
        self.unobserved = tuple(s for s, t in zip(self.states, totals) if t == 0)

    # ---- matrices --------------------------------------------------------------------------
    @cached_property
    def P(self) -> sparse.csr_matrix:
        """Row-stochastic (n_t, n_t + n_o); never-left states drop off."""
        n = len(self.states)
        counts = self.counts.tolil()
        totals = np.asarray(self.counts.sum(axis=1)).ravel()
        for i in np.flatnonzero(totals == 0):
            counts[i, n + self._oi[self.dropoff_outcome]] = 1.0
        counts = sparse.csr_matrix(counts.tocsr())
        counts.sort_indices()
        rows = np.asarray(counts.sum(axis=1)).ravel()
        counts.data = counts.data / np.repeat(rows, np.diff(counts.indptr))  # divided as the dense chain divides
        return counts

    @cached_property
    def Q(self) -> sparse.csc_matrix:
        return sparse.csc_matrix(self.P[:, : len(self.states)])

    @cached_property
    def R(self) -> np.ndarray:
        return np.asarray(self.P[:, len(self.states):].todense())

    @cached_property
    def _lu(self) -> Any:
        """The LU factors of I − Q; raises SingularSystemError as the dense chain does."""
        n = len(self.states)
        trapped = _trapped(self.Q, self.R)
        refuse_trapped(self.states, trapped)
        system = sparse.csc_matrix(sparse.identity(n, format="csc") - self.Q)
        try:
            lu = splu(system)
            inverse = LinearOperator((n, n), matvec=lu.solve, rmatvec=lambda x: lu.solve(x, trans="T"), dtype=float)
            cond = float(sparse.linalg.norm(system, 1) * onenormest(inverse))
        except RuntimeError:  # "factor is exactly singular"
            lu, cond = None, float("inf")
        if lu is None or not np.isfinite(cond) or cond > COND_LIMIT:
            raise SingularSystemError(
                f"journey chain is near-singular (condition number {cond:.3g}): some states almost never "
                "leave their loop; set collapse_self_loops: true for the journey or merge those states")
        return lu

    @cached_property
    def B(self) -> np.ndarray:
        return np.asarray(self._lu.solve(np.ascontiguousarray(self.R)))

    @cached_property
    def expected_steps(self) -> np.ndarray:
        return np.asarray(self._lu.solve(np.ones(len(self.states))))

    @cached_property
    def _start_row(self) -> np.ndarray:
        e = np.zeros(len(self.states))
        e[self._si[self.start]] = 1.0
        return np.asarray(self._lu.solve(e, trans="T"))

    @cached_property
    def _diag_n(self) -> np.ndarray:
        """diag N per strongly connected component (module docstring)."""
        _, labels = csgraph.connected_components(self.Q, directed=True, connection="strong")
        diag = 1.0 / (1.0 - self.Q.diagonal())  # right for every state on no loop but a self-loop
        sizes = np.bincount(labels)
        for label in np.flatnonzero(sizes > 1):
            members = np.flatnonzero(labels == label)
            block = sparse.csc_matrix(sparse.identity(len(members)) - self.Q[members][:, members])
            lu = splu(block)
            for lo in range(0, len(members), DIAG_BLOCK):
                cols = np.arange(lo, min(lo + DIAG_BLOCK, len(members)))
                rhs = np.zeros((len(members), len(cols)))
                rhs[cols, np.arange(len(cols))] = 1.0
                diag[members[cols]] = lu.solve(rhs)[cols, np.arange(len(cols))]
        return diag

    # ---- accessors for the shared removal maths (engine.markov.ChainBase) ------------------
    @cached_property
    def _p_entries(self) -> dict[tuple[int, int], float]:
        """P's non-zero entries: one lookup per transition shown, without scipy's per-element indexing."""
        coo = self.P.tocoo()
        return dict(zip(zip(coo.row.tolist(), coo.col.tolist()), coo.data.tolist()))

    def probability(self, src: str, dst: str) -> float:
        col = self._si[dst] if dst in self._si else len(self.states) + self._outcome(dst)
        return self._p_entries.get((self._state(src), col), 0.0)

    def n_block(self, rows: list[int], cols: list[int]) -> np.ndarray:
        rhs = np.zeros((len(self.states), len(cols)))
        rhs[cols, np.arange(len(cols))] = 1.0
        return np.asarray(self._lu.solve(rhs))[rows]  # columns of N, one solve each

    def q_into(self, cols: list[int], k: int) -> np.ndarray:
        return np.asarray(self.Q[:, [k]].todense()).ravel()[cols]

    def _edges(self) -> tuple[list[list[int]], list[bool]]:
        q = sparse.csr_matrix(self.Q)
        q.eliminate_zeros()
        q.sort_indices()
        succ = [q.indices[q.indptr[i]:q.indptr[i + 1]].tolist() for i in range(len(self.states))]
        return succ, (self.R.sum(axis=1) > 0).tolist()


def _count_matrix(states: tuple[str, ...], outcomes: tuple[str, ...],
                  counts: Mapping[tuple[str, str], int]) -> sparse.csr_matrix:
    """(n_t, n_t + n_o) counts; the same caller errors as engine.markov.ChainMetrics.from_counts."""
    kept = [(i, j, float(c)) for i, j, c in indexed_counts(states, outcomes, counts) if c]
    rows, cols, vals = ([t[k] for t in kept] for k in range(3))
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(states), len(states) + len(outcomes)))


def _trapped(Q: sparse.csc_matrix, R: np.ndarray) -> np.ndarray:
    """States with no path to an outcome: not reached backwards from the states that exit."""
    n = Q.shape[0]
    exits = np.flatnonzero(R.sum(axis=1) > 0)
    sink = sparse.csr_matrix((np.ones(len(exits)), (np.full(len(exits), n), exits)), shape=(n + 1, n + 1))
    backwards = sparse.bmat([[sparse.csr_matrix(Q.T), None], [None, sparse.csr_matrix((1, 1))]]) + sink
    seen = csgraph.breadth_first_order(backwards, n, directed=True, return_predecessors=False)
    trapped = np.ones(n + 1, dtype=bool)
    trapped[seen] = False
    return trapped[:n]
