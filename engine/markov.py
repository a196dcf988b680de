"""Absorbing Markov chain maths over one snapshot's transition counts (pure numpy).

Transient states S are the journey steps, absorbing states A the outcomes.
P(j | i) = count(i→j) / Σ_k count(i→k), the sum running over transient *and*
absorbing targets, so every transient row of P sums to 1. From the blocks
Q (S→S) and R (S→A): N = (I − Q)⁻¹, B = N R, t = N·1. N is never formed by an
explicit inverse: it is the solution of (I − Q) X = I (``numpy.linalg.solve``).

Rule for states without outgoing counts: a transient state that was seen (it is
listed in ``states``) but never left (only possible when it was the last step of
censored journeys, or a caller passes such counts) is treated as dropping off:
its row sends all mass to the drop-off outcome. Those states are listed in
``ChainMetrics.unobserved`` so callers can say so; the chain never breaks on them.

Removal effects come in the two named definitions the paper notes ask for:

* ``removal_effect`` (the paper's, absolute, renormalised): delete every edge
  into and out of s, renormalise each predecessor's remaining row (a predecessor
  whose only edge went to s sends its mass to the drop-off outcome),
  effect = B(start, o) − B′(start, o). Renormalising row i is the same as turning
  its edge into s into a self-loop. States that the removal cuts off from every
  outcome (a loop whose only exit was s) can never finish: their mass goes to the
  drop-off outcome as well. Solved exactly from N, without a new n × n solve per
  state: make s absorbing (a rank-one change of I − Q, so by Sherman–Morrison
  N_s = N − N[:, s] (N[s, :] − e_s) / N[s, s] and B_s = B − g B[s] with
  g = N[:, s] / N[s, s]); a walk that would enter s from predecessor i instead
  restarts at i, so with F[x, i] = N_s[x, i] P(i → s) the rows B′ of the
  predecessors solve the small system (I − F) B′ = B_s over the predecessors
  (size = in-degree of s), and B′(start) = B_s(start) + F[start] B′. Cost per
  state O(p³ + p·n) for p predecessors instead of O(n³).
* ``removal_effect_relative`` (the classic redirect-to-null attribution): mass
  entering s goes to the drop-off outcome instead; effect = (B − B′)/B. This has a
  closed form from N: with h = N[start, s] / N[s, s] the probability of ever
  reaching s, B′(start, o) = B(start, o) − h·B(s, o) + h·[o = drop-off].
  For o ≠ drop-off it lies in [0, 1]; for the drop-off outcome it is ≤ 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ontology.errors import SingularSystemError

COND_LIMIT = 1e12  # (I − Q) with a larger condition number is treated as near-singular
EXACT_COND_STATES = 100  # up to this many states the 2-norm condition number (an SVD); above, the 1-norm from N


class ChainBase:
    """Lookups and removal effects shared by the dense chain and the sparse one (engine.markov_sparse).

    Subclasses provide the matrices: `B`, `expected_steps`, `_start_row` (N[start, ·]), `_diag_n` (diag N),
    `probability`, `n_block` (a block of N), `q_into` (a column of Q) and `_edges` (successors, exits).
    """

    states: tuple[str, ...]
    outcomes: tuple[str, ...]
    start: str
    conversion_outcome: str
    dropoff_outcome: str
    unobserved: tuple[str, ...]
    B: Any
    _start_row: Any
    _diag_n: Any

    def probability(self, src: str, dst: str) -> float:
        raise NotImplementedError

    def n_block(self, rows: list[int], cols: list[int]) -> np.ndarray:
        """N[rows][:, cols]."""
        raise NotImplementedError

    def q_into(self, cols: list[int], k: int) -> np.ndarray:
        """Q[cols, k]."""
        raise NotImplementedError

    def _edges(self) -> tuple[list[list[int]], list[bool]]:
        """Per state its successor states, and whether it has an edge to an outcome."""
        raise NotImplementedError

    # ---- indices -------------------------------------------------------------------------
    @cached_property
    def _si(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.states)}

    @cached_property
    def _oi(self) -> dict[str, int]:
        return {o: i for i, o in enumerate(self.outcomes)}

    def _state(self, name: str) -> int:
        try:
            return self._si[name]
        except KeyError:
            raise ValueError(f"unknown state {name!r}; known: {', '.join(self.states)}") from None

    def _outcome(self, name: str) -> int:
        try:
            return self._oi[name]
        except KeyError:
            raise ValueError(f"unknown outcome {name!r}; known: {', '.join(self.outcomes)}") from None

    # ---- scalar lookups --------------------------------------------------------------------
    def absorption(self, state: str, outcome: str) -> float:
        return float(self.B[self._state(state), self._outcome(outcome)])

    def exit_probability(self, state: str) -> float:
        """One-step probability of going straight to the drop-off outcome."""
        return self.probability(state, self.dropoff_outcome)

    def expected_visits(self, state: str) -> float:
        """Expected visits to `state` by a journey from the start state (N[start, state])."""
        return float(self._start_row[self._state(state)])

    # ---- removal effects -------------------------------------------------------------------
    def removal_effect(self, state: str, outcome: str) -> float:
        """Paper definition: absolute, renormalised, B(start, o) − B′(start, o)."""
        return float(self._removal_absolute[self._removable(state), self._outcome(outcome)])

    def removal_effect_relative(self, state: str, outcome: str) -> float:
        """Classic definition: mass into `state` goes to drop-off, (B − B′)/B; 0 when B(start, o) = 0."""
        return float(self._removal_relative[self._removable(state), self._outcome(outcome)])

    def removal_effects(self, outcome: str) -> dict[str, tuple[float, float]]:
        """(absolute, relative) for every transient state except the start state."""
        o = self._outcome(outcome)
        return {s: (float(self._removal_absolute[i, o]), float(self._removal_relative[i, o]))
                for i, s in enumerate(self.states) if s != self.start}

    def _removable(self, state: str) -> int:
        i = self._state(state)
        if state == self.start:
            raise ValueError(f"the start state {state!r} cannot be removed: every journey begins there")
        return i

    @cached_property
    def _removal_relative(self) -> np.ndarray:
        """(n_t, n_o) classic effects from the closed form in the module docstring."""
        s = self._si[self.start]
        B = self.B
        hit = self._start_row / self._diag_n  # P(ever reach k | start) for k ≠ start
        drop = np.zeros(len(self.outcomes))
        drop[self._oi[self.dropoff_outcome]] = 1.0
        loss = hit[:, None] * (B - drop[None, :])
        base = B[s][None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(base > 0, loss / np.where(base > 0, base, 1.0), 0.0)
        rel[s] = np.nan
        return rel

    @cached_property
    def _removal_absolute(self) -> np.ndarray:
        """(n_t, n_o) paper effects for every removable state (module docstring); NaN for the start state."""
        return self.removal_absolute_rows([i for i in range(len(self.states)) if self.states[i] != self.start])

    def limit_removal_to(self, names: Sequence[str]) -> None:
        """Solve the paper removal effect only for `names` (others NaN), unless all are solved already.

        For the candidate filter of large chains (engine.state_metrics); seeds the lazy cache once.
        """
        if "_removal_absolute" not in self.__dict__:
            self.__dict__["_removal_absolute"] = self.removal_absolute_rows([self._removable(s) for s in names])

    def removal_absolute_rows(self, ks: Sequence[int]) -> np.ndarray:
        """(n_t, n_o) paper effects for the state indices `ks` only; NaN elsewhere (candidates-only callers)."""
        s, drop = self._si[self.start], self._oi[self.dropoff_outcome]
        out = np.full((len(self.states), len(self.outcomes)), np.nan)
        for k in ks:
            out[k] = self.B[s] - self._removed_start_row(int(k), s, drop)
        return out

    @cached_property
    def _postdominators(self) -> tuple[list[int], list[int], list[list[int]]]:
        """Post-dominator tree entry/exit times towards the outcomes (`_cut_off`), and each state's predecessors."""
        succ, exits = self._edges()
        tin, tout = postdominator_intervals(succ, exits)
        preds: list[list[int]] = [[] for _ in succ]
        for i, nexts in enumerate(succ):
            for k in nexts:
                if k != i:
                    preds[k].append(i)
        return tin.tolist(), tout.tolist(), preds

    def _cut_off(self, x: int, removed: int) -> bool:
        """Whether every path from `x` to an outcome passes through `removed` (x is trapped without it)."""
        tin, tout, _ = self._postdominators
        return x == removed or (tin[removed] < tin[x] and tout[x] <= tout[removed])

    def _removed_start_row(self, k: int, s: int, drop: int) -> np.ndarray:
        """B′(start, ·) with state k removed, from N by Sherman–Morrison and a predecessor-sized solve."""
        B = self.B
        e_drop = np.zeros(len(self.outcomes))
        e_drop[drop] = 1.0
        if self._cut_off(s, k):
            return e_drop
        preds = self._postdominators[2][k]
        live = [i for i in preds if i != s and not self._cut_off(i, k)] + ([s] if s in preds else [])
        dead = [i for i in preds if i not in live]  # cut off from every outcome: their mass drops off
        rows = live + ([] if s in live else [s])
        L, D = len(live), len(dead)
        block = self.n_block(rows + [k], live + dead + [k])  # N[rows; k] × N[live, dead; k]: all the removal needs
        n_rows, n_k = block[:-1], block[-1]
        hit = n_rows[:, -1] / n_k[-1]  # P(reach k) from each row state
        F = (n_rows[:, :L] - np.outer(hit, n_k[:L])) * self.q_into(live, k)
        into_dead = ((n_rows[:, L:L + D] - np.outer(hit, n_k[L:L + D])) * self.q_into(dead, k)).sum(axis=1)
        rhs = B[rows] - np.outer(hit, B[k]) + np.outer(into_dead, e_drop)
        m = len(live)
        solved = np.linalg.solve(np.eye(m) - F[:m], rhs[:m]) if m else rhs[:0]
        return solved[m - 1] if s in live else rhs[m] + F[m] @ solved


@dataclass(frozen=True, eq=False)
class ChainMetrics(ChainBase):
    """An absorbing chain built from counts; every derived matrix is computed once, lazily."""

    states: tuple[str, ...]
    outcomes: tuple[str, ...]
    start: str
    conversion_outcome: str
    dropoff_outcome: str
    counts: np.ndarray = field(repr=False)  # (n_t, n_t + n_o) raw transition counts
    unobserved: tuple[str, ...] = ()

    @classmethod
    def from_counts(
        cls,
        states: Sequence[str],
        outcomes: Sequence[str],
        counts: Mapping[tuple[str, str], int],
        start: str,
        conversion_outcome: str,
        dropoff_outcome: str,
    ) -> ChainMetrics:
        """Build the chain; counts out of an outcome or to an unknown name are caller errors."""
        states, outcomes = tuple(states), tuple(outcomes)
        _check_names(states, outcomes, start, conversion_outcome, dropoff_outcome)
        matrix = np.zeros((len(states), len(states) + len(outcomes)), dtype=float)
        for i, j, count in indexed_counts(states, outcomes, counts):
            matrix[i, j] += count
        empty = matrix.sum(axis=1) == 0
        matrix.setflags(write=False)
        unobserved = tuple(s for s, e in zip(states, empty) if e)
        return cls(states, outcomes, start, conversion_outcome, dropoff_outcome, matrix, unobserved)

    # ---- matrices --------------------------------------------------------------------------
    @cached_property
    def P(self) -> np.ndarray:
        """Row-stochastic (n_t, n_t + n_o); never-left states drop off (module docstring)."""
        counts = self.counts.copy()
        drop_col = len(self.states) + self._oi[self.dropoff_outcome]
        empty = counts.sum(axis=1) == 0
        counts[empty, drop_col] = 1.0
        P = counts / counts.sum(axis=1, keepdims=True)
        P.setflags(write=False)
        return P

    @property
    def Q(self) -> np.ndarray:
        return self.P[:, : len(self.states)]

    @property
    def R(self) -> np.ndarray:
        return self.P[:, len(self.states):]

    @cached_property
    def N(self) -> np.ndarray:
        """Fundamental matrix via solve; raises SingularSystemError naming the trapped states."""
        n = len(self.states)
        system = np.eye(n) - self.Q
        trapped = trapped_states(self.Q, self.R)
        refuse_trapped(self.states, trapped)
        if n <= EXACT_COND_STATES:
            cond = float(np.linalg.cond(system))
            N = np.linalg.solve(system, np.eye(n)) if np.isfinite(cond) and cond <= COND_LIMIT else None
        else:  # an SVD of a large system costs more than the solve: the 1-norm condition number from N instead
            try:
                N = np.linalg.solve(system, np.eye(n))  # one LU factorisation, reused for every right-hand side
                cond = float(np.linalg.norm(system, 1) * np.linalg.norm(N, 1))
            except np.linalg.LinAlgError:
                N, cond = None, float("inf")
        if N is None or not np.isfinite(cond) or cond > COND_LIMIT:
            names = _weakest_loop(self.states, self.Q)
            raise SingularSystemError(
                f"journey chain is near-singular (condition number {cond:.3g}): states {', '.join(names)} "
                "almost never leave their loop; set collapse_self_loops: true for the journey or merge those states")
        N.setflags(write=False)
        return N

    @cached_property
    def B(self) -> np.ndarray:
        B = self.N @ self.R
        B.setflags(write=False)
        return B

    @cached_property
    def expected_steps(self) -> np.ndarray:
        t = self.N.sum(axis=1)
        t.setflags(write=False)
        return t

    @property
    def _start_row(self) -> np.ndarray:
        return self.N[self._si[self.start]]

    @property
    def _diag_n(self) -> np.ndarray:
        return np.diag(self.N)

    def probability(self, src: str, dst: str) -> float:
        col = self._si[dst] if dst in self._si else len(self.states) + self._outcome(dst)
        return float(self.P[self._state(src), col])

    def n_block(self, rows: list[int], cols: list[int]) -> np.ndarray:
        return self.N[np.ix_(rows, cols)]

    def q_into(self, cols: list[int], k: int) -> np.ndarray:
        return self.Q[cols, k]

    def _edges(self) -> tuple[list[list[int]], list[bool]]:
        succ = [np.flatnonzero(row).tolist() for row in self.Q > 0]
        return succ, (self.R.sum(axis=1) > 0).tolist()


def postdominator_intervals(succ: list[list[int]], exits: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Post-dominator tree of a chain whose every state reaches an outcome, as DFS entry/exit times.

    A virtual sink follows every state with an edge to an outcome; d post-dominates x when every path
    from x to the sink passes d, i.e. d is an ancestor of x in the tree (Cooper, Harvey & Kennedy's
    iterative dominator algorithm on the reversed graph, rooted at the sink).
    """
    n = len(succ)
    sink = n
    preds_rev = [list(s) + ([sink] if e else []) for s, e in zip(succ, exits)]  # reversed-graph predecessors
    children_rev: list[list[int]] = [[] for _ in range(n + 1)]
    for x, nexts in enumerate(preds_rev):
        for y in nexts:
            children_rev[y].append(x)
    order = _postorder(children_rev, sink)
    rank = np.full(n + 1, -1)
    rank[order] = np.arange(len(order))
    idom = np.full(n + 1, -1)
    idom[sink] = sink
    changed = True
    while changed:
        changed = False
        for x in reversed(order[:-1]):  # reverse postorder, sink excluded
            done = [p for p in preds_rev[x] if p != x and idom[p] >= 0]
            new = done[0]
            for p in done[1:]:
                new = _intersect(idom, rank, p, new)
            if idom[x] != new:
                idom[x], changed = new, True
    tree: list[list[int]] = [[] for _ in range(n + 1)]
    for x in range(n):
        tree[idom[x]].append(x)
    tin, tout = np.zeros(n + 1, dtype=int), np.zeros(n + 1, dtype=int)
    clock, stack = 0, [(sink, False)]
    while stack:
        x, leaving = stack.pop()
        clock += 1
        if leaving:
            tout[x] = clock
            continue
        tin[x] = clock
        stack.append((x, True))
        stack.extend((c, False) for c in tree[x])
    return tin, tout


def _postorder(children: list[list[int]], root: int) -> list[int]:
    out, seen, stack = [], {root}, [(root, iter(children[root]))]
    while stack:
        x, it = stack[-1]
        nxt = next((c for c in it if c not in seen), None)
        if nxt is None:
            out.append(x)
            stack.pop()
        else:
            seen.add(nxt)
            stack.append((nxt, iter(children[nxt])))
    return out


def _intersect(idom: np.ndarray, rank: np.ndarray, a: int, b: int) -> int:
    while a != b:
        while rank[a] < rank[b]:
            a = int(idom[a])
        while rank[b] < rank[a]:
            b = int(idom[b])
    return a


def trapped_states(Q: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Transient states with no path to any absorbing state (they make I − Q singular)."""
    can = R.sum(axis=1) > 0
    edges = Q > 0
    while True:
        nxt = can | (edges & can[None, :]).any(axis=1)
        if (nxt == can).all():
            return ~can
        can = nxt


def _trapped_batch(Qs: np.ndarray, Rs: np.ndarray, dead: np.ndarray) -> np.ndarray:
    """Per stacked system, live states that can no longer reach an outcome (used by detectors.stake)."""
    can = (Rs.sum(axis=2) > 0) | dead
    edges = Qs > 0
    while True:
        nxt = can | (edges & can[:, None, :]).any(axis=2)
        if (nxt == can).all():
            return ~can
        can = nxt


def _weakest_loop(states: tuple[str, ...], Q: np.ndarray) -> list[str]:
    """The strongly connected group of states whose best escape probability is smallest."""
    from scipy.sparse.csgraph import connected_components

    _, labels = connected_components(Q > 0, directed=True, connection="strong")
    best_label, best_escape = labels[0], np.inf
    for label in np.unique(labels):
        members = labels == label
        escape = (1.0 - Q[np.ix_(members, members)].sum(axis=1)).max()
        if escape < best_escape:
            best_label, best_escape = label, escape
    return [s for s, lab in zip(states, labels) if lab == best_label]


def refuse_trapped(states: Sequence[str], trapped: np.ndarray) -> None:
    """SingularSystemError naming the states that form a closed loop with no path to any outcome."""
    if trapped.any():
        names = [s for s, t in zip(states, trapped) if t]
        raise SingularSystemError(
            f"journey chain cannot be solved: states {', '.join(names)} form a closed loop with no path "
            "to any outcome; add an outcome those journeys can reach (e.g. an inactive_for drop-off) "
            "or check the state rules that produce the loop")


def _check_names(states: tuple[str, ...], outcomes: tuple[str, ...], start: str, conversion: str, dropoff: str) -> None:
    if start not in states:
        raise ValueError(f"start state {start!r} is not among the states {list(states)}")
    for label, name in (("conversion outcome", conversion), ("drop-off outcome", dropoff)):
        if name not in outcomes:
            raise ValueError(f"{label} {name!r} is not among the outcomes {list(outcomes)}")
    clash = set(states) & set(outcomes)
    if clash:
        raise ValueError(f"names used both as state and outcome: {sorted(clash)}")
    if len(set(states)) != len(states) or len(set(outcomes)) != len(outcomes):
        raise ValueError("states and outcomes must be unique")


def indexed_counts(states: tuple[str, ...], outcomes: tuple[str, ...],
                   counts: Mapping[tuple[str, str], int]) -> list[tuple[int, int, int]]:
    """(row, column, count) of every transition count, columns over states then outcomes; counts out of an
    outcome, to an unknown name or below 0 are caller errors (the dense and the sparse chain share this)."""
    index = {name: i for i, name in enumerate(states + outcomes)}
    out = []
    for (src, dst), count in counts.items():
        if src not in index or dst not in index:
            raise ValueError(f"transition {src!r}->{dst!r} names a state or outcome not in the chain")
        if index[src] >= len(states):
            raise ValueError(f"transition {src!r}->{dst!r} leaves an absorbing outcome")
        if count < 0:
            raise ValueError(f"transition {src!r}->{dst!r} has a negative count {count}")
        out.append((index[src], index[dst], count))
    return out
