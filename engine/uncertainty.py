"""Bootstrap intervals for a snapshot's structural numbers: B, both removal effects, the removal ranking.

Why: a removal effect of 0.14 from 300 journeys and the same 0.14 from
300 000 are different claims, and an auditor reading "import_data matters
most" needs to see how often that ranking holds up (paper-notes.md, "Where we
go further than the paper").

Method, a parametric bootstrap under the first-order chain the snapshot fits:
each transient state's outgoing counts are redrawn as Multinomial(n_i, p_i),
with n_i the state's observed number of transitions and p_i its observed row
of P. Each replicate's chain is solved exactly like the snapshot's
(`engine.markov.ChainMetrics`); an interval is the percentile interval of the
replicates, and a state's removal rank (1 = the largest removal effect on the
conversion outcome) gets its percentile interval and the share of replicates
that rank it first (a tie for first shares the replicate). The random seed
comes from the snapshot id, so one snapshot always gives the same intervals.

A redraw can lose every exit of a loop (an exit seen once is redrawn as zero
about e^-1 of the time). The engine's rule for a state that is never left
applies: those states drop off. Such replicates are counted
(`redirected_replicates`), not dropped, because leaving them out would only
keep the redraws where the rare exit survived and bias B upwards.

Limits, reported in `notes` next to the numbers: transitions inside one
journey are treated as independent, as the first-order model does, so where
the snapshot's model check prefers a second-order chain the intervals are too
narrow; an edge never observed can never be redrawn, so states with few
outgoing transitions get intervals that are too narrow, down to a point; a
state never left has no data and gets no interval.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.markov import ChainMetrics, trapped_states
from ontology.errors import EngineError, SingularSystemError

METHOD = ("parametric bootstrap: each state's outgoing transition counts redrawn as Multinomial(observed total, "
          "observed probabilities), the chain solved again per replicate; percentile intervals")
FIRST_ORDER_NOTE = ("transitions are treated as independent (first-order chain): where the model check prefers "
                    "second order, these intervals are too narrow")
MAX_FAILED_SHARE = 0.05  # more unsolvable redraws than this and no interval is given
FEW_TRANSITIONS = 30     # a state left fewer times than this gets a "too narrow" note
SOLVE_UNITS_PER_S = 1e7  # replicates x states^3 per second, measured on this 2-core box (30 states: 3 ms a replicate)


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals per state, and what limits them. Interval maps are None when none can be given."""

    level: float
    replicates: int
    seed: int
    failed_replicates: int
    redirected_replicates: int
    transitions_out: dict[str, int]                                      # the redraw's sample size per state
    absorption: dict[str, dict[str, tuple[float, float]]] | None        # state -> outcome -> (low, high)
    removal_effect: dict[str, dict[str, tuple[float, float]]] | None    # start state excluded
    removal_effect_relative: dict[str, dict[str, tuple[float, float]]] | None
    removal_rank: dict[str, dict[str, Any]] | None  # state -> observed rank, (low, high), share ranked first
    notes: tuple[str, ...] = ()


def seed_for(snapshot_id: str) -> int:
    """A 63-bit seed from the snapshot id: the same snapshot, the same replicates."""
    return int.from_bytes(hashlib.sha256(f"bootstrap\0{snapshot_id}".encode()).digest()[:8], "big") >> 1


def seconds_estimate(n_states: int, replicates: int) -> float:
    """Rough cost of `bootstrap`, deliberately high: each replicate solves its chain (one LU of I − Q) and every
    state's removal effect from it (engine.markov); states³ per replicate over-counts large sparse chains."""
    return replicates * max(n_states, 1) ** 3 / SOLVE_UNITS_PER_S


def bootstrap(chain: ChainMetrics, *, seed: int, replicates: int = 500, level: float = 0.95,
              max_seconds: float | None = None) -> Intervals:
    """Redraw the chain's counts `replicates` times and take percentile intervals (module docstring).

    `max_seconds` refuses work estimated above it (a server keeps one request from holding a worker).
    """
    if replicates < 2:
        raise ValueError(f"replicates must be at least 2, got {replicates}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    n = len(chain.states)
    if max_seconds is not None and seconds_estimate(n, replicates) > max_seconds:
        most = max(2, int(max_seconds * SOLVE_UNITS_PER_S / max(n, 1) ** 3))
        raise EngineError(f"intervals: {replicates} replicates of a {n}-state chain take about "
                          f"{seconds_estimate(n, replicates):.0f} s; ask for at most {most} here, or use "
                          "`journeygraph snapshot ID --intervals N` on the command line")
    removable = [s for s in chain.states if s != chain.start]
    drop = n + chain.outcomes.index(chain.dropoff_outcome)
    b, absolute, relative = [], [], []
    redirected = 0
    for counts in _redraw(chain.counts, replicates, np.random.default_rng(seed)):  # one small solve per replicate
        redirected += _drop_trapped(counts, n, drop)
        replicate = ChainMetrics(chain.states, chain.outcomes, chain.start, chain.conversion_outcome,
                                 chain.dropoff_outcome, counts, chain.unobserved)
        try:
            absorbed = np.array(replicate.B)
            effects = [replicate.removal_effects(o) for o in chain.outcomes]
        except (SingularSystemError, np.linalg.LinAlgError):  # near-singular: a loop almost never left
            continue
        b.append(absorbed)
        absolute.append([[e[s][0] for e in effects] for s in removable])
        relative.append([[e[s][1] for e in effects] for s in removable])
    ok, k = len(b), len(chain.outcomes)
    failed = replicates - ok
    out_counts = dict(zip(chain.states, (int(t) for t in chain.counts.sum(axis=1))))
    notes = _notes(chain, replicates, failed, redirected, out_counts)
    if ok < 2 or failed > MAX_FAILED_SHARE * replicates:
        return Intervals(level, replicates, seed, failed, redirected, out_counts, None, None, None, None, notes)
    tail = (1.0 - level) / 2.0
    b_arr = np.array(b, dtype=float).reshape(ok, n, k)
    abs_arr = np.array(absolute, dtype=float).reshape(ok, len(removable), k)
    rel_arr = np.array(relative, dtype=float).reshape(ok, len(removable), k)
    observed = [s for s in chain.states if s not in chain.unobserved]  # a state never left has no data to redraw
    return Intervals(
        level=level, replicates=replicates, seed=seed, failed_replicates=failed, redirected_replicates=redirected,
        transitions_out=out_counts,
        absorption=_by_state(b_arr, list(chain.states), observed, chain.outcomes, tail),
        removal_effect=_by_state(abs_arr, removable, observed, chain.outcomes, tail),
        removal_effect_relative=_by_state(rel_arr, removable, observed, chain.outcomes, tail),
        removal_rank=_ranks(chain, abs_arr, removable, tail), notes=notes,
    )


def _redraw(counts: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, states, targets) counts: each observed row redrawn multinomially; unobserved rows stay empty."""
    out = np.zeros((replicates, *counts.shape))
    totals = counts.sum(axis=1)
    for i in np.flatnonzero(totals > 0):  # one draw per state row, vectorised over replicates
        out[:, i, :] = rng.multinomial(int(totals[i]), counts[i] / totals[i], size=replicates)
    return out


def _drop_trapped(counts: np.ndarray, n: int, drop: int) -> bool:
    """Send every state that can no longer reach an outcome to drop-off, in place; whether any was."""
    totals = counts.sum(axis=1)
    safe = np.where(totals > 0, totals, 1.0)[:, None]
    rows = counts / safe
    rows[totals == 0, drop] = 1.0  # never left: drops off (engine.markov's rule)
    stuck = trapped_states(rows[:, :n], rows[:, n:])
    if not stuck.any():
        return False
    counts[stuck] = 0.0
    counts[stuck, drop] = np.maximum(totals[stuck], 1.0)
    return True


def _notes(chain: ChainMetrics, replicates: int, failed: int, redirected: int, out_counts: dict[str, int]) -> tuple[str, ...]:
    notes = [FIRST_ORDER_NOTE]
    few = sorted(s for s, c in out_counts.items() if 0 < c < FEW_TRANSITIONS)
    if few:
        notes.append(f"left fewer than {FEW_TRANSITIONS} times, so their intervals are too narrow (an edge never seen "
                     f"is never redrawn): {', '.join(few)}")
    if chain.unobserved:
        notes.append(f"never left, so no interval: {', '.join(sorted(chain.unobserved))}")
    if redirected:
        notes.append(f"{redirected} of {replicates} redraws lost every exit of a loop; those states dropped off, "
                     "as the engine treats a state that is never left")
    if failed:
        notes.append(f"{failed} of {replicates} redraws could not be solved (a loop almost never left) and were left "
                     f"out; above {MAX_FAILED_SHARE:.0%} no interval is given")
    if chain.absorption(chain.start, chain.conversion_outcome) == 0:
        notes.append(f"{chain.conversion_outcome} is never reached from {chain.start}: no removal ranking")
    return tuple(notes)


def _by_state(values: np.ndarray, names: list[str], keep: list[str], outcomes: tuple[str, ...],
              tail: float) -> dict[str, dict[str, tuple[float, float]]]:
    if not names:  # e.g. no removable state in a one-state chain
        return {}
    low, high = np.nanquantile(values, [tail, 1.0 - tail], axis=0)
    return {s: {o: (float(low[i, j]), float(high[i, j])) for j, o in enumerate(outcomes)}
            for i, s in enumerate(names) if s in keep}


def _ranks(chain: ChainMetrics, absolute: np.ndarray, removable: list[str], tail: float) -> dict[str, dict[str, object]] | None:
    """Rank 1 = largest absolute removal effect on the conversion outcome; ties share the better rank."""
    if not removable or chain.absorption(chain.start, chain.conversion_outcome) == 0:
        return None
    conv = chain.outcomes.index(chain.conversion_outcome)
    observed = _rank_rows(np.array([[chain.removal_effect(s, chain.conversion_outcome) for s in removable]]))[0]
    ranks = _rank_rows(absolute[:, :, conv])
    low = np.quantile(ranks, tail, axis=0, method="lower")
    high = np.quantile(ranks, 1.0 - tail, axis=0, method="higher")
    first = ranks == 1
    share = (first / first.sum(axis=1, keepdims=True)).mean(axis=0)  # a tie for first splits the replicate
    return {s: {"observed": int(observed[i]), "interval": (int(low[i]), int(high[i])), "share_ranked_first": float(share[i])}
            for i, s in enumerate(removable)}


def _rank_rows(effects: np.ndarray) -> np.ndarray:
    """Competition ranks (1 + how many are strictly larger) per row, so ties never depend on state order."""
    return 1 + (effects[:, None, :] > effects[:, :, None]).sum(axis=2)


def to_json(intervals: Intervals, states: tuple[str, ...], model_check: dict | None = None) -> dict[str, object]:
    """The `snapshot --intervals` block: one entry per state in the snapshot's state order, floats rounded."""
    from engine.snapshot import r6

    def pairs(table: dict[str, dict[str, tuple[float, float]]] | None, state: str) -> dict[str, list] | None:
        if table is None or state not in table:
            return None
        return {o: [r6(low), r6(high)] for o, (low, high) in table[state].items()}

    def rank(state: str) -> dict[str, object] | None:
        if intervals.removal_rank is None or state not in intervals.removal_rank:
            return None
        r = intervals.removal_rank[state]
        return {"observed": r["observed"], "interval": list(r["interval"]), "share_ranked_first": r6(r["share_ranked_first"])}

    notes = list(intervals.notes)
    preferred = (model_check or {}).get("preferred")
    if preferred == "second_order":
        notes.insert(0, "this snapshot's model check prefers a second-order chain: read these intervals as too narrow")
    usable = intervals.absorption is not None
    return {
        "method": METHOD, "level": intervals.level, "replicates": intervals.replicates,
        "failed_replicates": intervals.failed_replicates, "redirected_replicates": intervals.redirected_replicates,
        "seed": intervals.seed, "model_check_preferred": preferred, "notes": notes,
        "states": [{"state": s, "transitions_out": intervals.transitions_out.get(s, 0),
                    "absorption": pairs(intervals.absorption, s),
                    "removal_effect": pairs(intervals.removal_effect, s),
                    "removal_effect_relative": pairs(intervals.removal_effect_relative, s),
                    "removal_rank": rank(s)} for s in states] if usable else None,
    }
