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
that rank it first. The random seed comes from the snapshot id, so one
snapshot always gives the same intervals.

Limits, said where the numbers are shown: transitions inside one journey are
treated as independent, as the first-order model does, so where the
snapshot's model check prefers a second-order chain (loops, repeated
visits), the intervals are too narrow. A replicate whose redrawn chain cannot
be solved (a loop whose only exit was never redrawn) is counted in
`failed_replicates` and left out; if more than half fail, no interval is given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from engine.markov import ChainMetrics
from ontology.errors import SingularSystemError

METHOD = ("parametric bootstrap: each state's outgoing transition counts redrawn as Multinomial(observed total, "
          "observed probabilities), the chain solved again per replicate; percentile intervals. Transitions are "
          "treated as independent (first-order), so the intervals are too narrow where the model check prefers "
          "second order.")
MAX_FAILED_SHARE = 0.5


@dataclass(frozen=True)
class Intervals:
    """Percentile intervals per state; `None` everywhere when too many replicates failed."""

    level: float
    replicates: int
    failed_replicates: int
    seed: int
    absorption: dict[str, dict[str, tuple[float, float]]] | None        # state -> outcome -> (low, high)
    removal_effect: dict[str, dict[str, tuple[float, float]]] | None    # start state excluded
    removal_effect_relative: dict[str, dict[str, tuple[float, float]]] | None
    removal_rank: dict[str, dict[str, object]] | None  # state -> observed rank, (low, high), share ranked first


def seed_for(snapshot_id: str) -> int:
    """A 63-bit seed from the snapshot id: the same snapshot, the same replicates."""
    return int.from_bytes(hashlib.sha256(f"bootstrap\0{snapshot_id}".encode()).digest()[:8], "big") >> 1


def bootstrap(chain: ChainMetrics, *, seed: int, replicates: int = 500, level: float = 0.95) -> Intervals:
    """Redraw the chain's counts `replicates` times and take percentile intervals (module docstring)."""
    if replicates < 2:
        raise ValueError(f"replicates must be at least 2, got {replicates}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    samples = _redraw(chain.counts, replicates, np.random.default_rng(seed))
    removable = [s for s in chain.states if s != chain.start]
    b, absolute, relative = [], [], []
    for counts in samples:  # one small solve per replicate (states x states), never per event
        replicate = ChainMetrics(chain.states, chain.outcomes, chain.start, chain.conversion_outcome,
                                 chain.dropoff_outcome, counts, chain.unobserved)
        try:
            absorbed = np.array(replicate.B)
            effects = [replicate.removal_effects(o) for o in chain.outcomes]
        except (SingularSystemError, np.linalg.LinAlgError):
            continue
        b.append(absorbed)
        absolute.append([[e[s][0] for e in effects] for s in removable])
        relative.append([[e[s][1] for e in effects] for s in removable])
    failed = replicates - len(b)
    if len(b) < 2 or failed > MAX_FAILED_SHARE * replicates:
        return Intervals(level, replicates, failed, seed, None, None, None, None)
    tail = (1.0 - level) / 2.0
    b_arr, abs_arr, rel_arr = np.array(b), np.array(absolute), np.array(relative)
    return Intervals(
        level=level, replicates=replicates, failed_replicates=failed, seed=seed,
        absorption=_by_state(b_arr, chain.states, chain.outcomes, tail),
        removal_effect=_by_state(abs_arr, removable, chain.outcomes, tail),
        removal_effect_relative=_by_state(rel_arr, removable, chain.outcomes, tail),
        removal_rank=_ranks(chain, abs_arr, removable, tail),
    )


def _redraw(counts: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, states, targets) counts: each observed row redrawn multinomially; unobserved rows stay empty."""
    out = np.zeros((replicates, *counts.shape))
    totals = counts.sum(axis=1)
    for i in np.flatnonzero(totals > 0):  # one draw per state row, vectorised over replicates
        out[:, i, :] = rng.multinomial(int(totals[i]), counts[i] / totals[i], size=replicates)
    return out


def _percentiles(values: np.ndarray, tail: float) -> np.ndarray:
    """(2, …) low and high percentile over the replicate axis; NaN where a replicate had no value."""
    return np.nanquantile(values, [tail, 1.0 - tail], axis=0)


def _by_state(values: np.ndarray, states: list[str] | tuple[str, ...], outcomes: tuple[str, ...],
              tail: float) -> dict[str, dict[str, tuple[float, float]]]:
    low, high = _percentiles(values, tail)
    return {s: {o: (float(low[i, j]), float(high[i, j])) for j, o in enumerate(outcomes)} for i, s in enumerate(states)}


def _ranks(chain: ChainMetrics, absolute: np.ndarray, removable: list[str], tail: float) -> dict[str, dict[str, object]]:
    """Rank 1 = largest absolute removal effect on the conversion outcome; ties share the better rank."""
    conv = chain.outcomes.index(chain.conversion_outcome)
    observed = _rank_rows(np.array([[chain.removal_effect(s, chain.conversion_outcome) for s in removable]]))[0]
    ranks = _rank_rows(absolute[:, :, conv])
    low = np.quantile(ranks, tail, axis=0, method="lower")
    high = np.quantile(ranks, 1.0 - tail, axis=0, method="higher")
    first = (ranks == 1).mean(axis=0)
    return {s: {"observed": int(observed[i]), "interval": (int(low[i]), int(high[i])), "share_ranked_first": float(first[i])}
            for i, s in enumerate(removable)}


def _rank_rows(effects: np.ndarray) -> np.ndarray:
    """Competition ranks (1 + how many are strictly larger) per row, so ties never depend on state order."""
    if effects.shape[1] == 0:
        return np.zeros(effects.shape, dtype=int)
    return 1 + (effects[:, None, :] > effects[:, :, None]).sum(axis=2)


def to_json(intervals: Intervals, states: tuple[str, ...]) -> dict[str, object]:
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

    usable = intervals.absorption is not None
    return {
        "method": METHOD, "level": intervals.level, "replicates": intervals.replicates,
        "failed_replicates": intervals.failed_replicates, "seed": intervals.seed,
        "note": None if usable else (f"{intervals.failed_replicates} of {intervals.replicates} redrawn chains could not be "
                                     "solved (a loop with no exit); too few to give intervals"),
        "states": [{"state": s, "absorption": pairs(intervals.absorption, s),
                    "removal_effect": pairs(intervals.removal_effect, s),
                    "removal_effect_relative": pairs(intervals.removal_effect_relative, s),
                    "removal_rank": rank(s)} for s in states] if usable else None,
    }
