"""engine.loss_estimates.block's sums, bit for bit, against the definition added up step by step.

The block skips the terms it knows are +0.0 (the steps that are not losses, the groups without one); skipping
them must leave every float as it was. The reference here adds each term in the snapshot's order (steps in step
order into their (journey, state) group, groups in np.unique's order into their state), one Python float at a
time, which is what a bincount does; r6 is switched off so the last bits are compared.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine import loss_estimates, snapshot, step_shares

# "dropped" is also a state: a move into it is a move into a loss, so a journey can have several loss steps
NAMES = ["a", "b", "c", "dropped", "converted", "declined"]
LOSSES = ["dropped", "declined"]


def _scope(rng: np.random.Generator, n: int, p_loss: float) -> tuple[step_shares.Steps, np.ndarray]:
    lengths = rng.integers(0, 7, n)
    row = np.repeat(np.arange(n), lengths)
    dst = np.where(rng.random(len(row)) < p_loss, rng.choice([3, 5], len(row)), rng.integers(0, 5, len(row)))
    s = np.round(rng.uniform(0, 40, len(row)))
    known = np.where(rng.random(n) < 0.4, np.nan, np.round(rng.uniform(0, 60, n)))
    steps = step_shares.Steps(row=row, s=s, known_t=known[row], src=rng.integers(0, 4, len(row)), dst=dst,
                              names=NAMES)
    return steps, np.round(rng.uniform(1, 90, n))


def _reference(steps: step_shares.Steps, done: step_shares.Counted, n: int) -> dict[str, object]:
    a: dict[tuple[int, int], float] = {}
    b: dict[tuple[int, int], float] = {}
    lost = np.isin(np.array(NAMES, dtype=object)[steps.dst[done.pick]], LOSSES)
    for i, p in enumerate(done.pick.tolist()):
        g = (int(done.pos[i]), int(steps.src[p]))
        b[g] = b.get(g, 0.0) + float(done.w[i])
        a[g] = a.get(g, 0.0) + (float(done.w[i]) if lost[i] else 0.0)
    groups = sorted(b)
    a_j, b_j = np.zeros(n), np.zeros(n)
    for g in groups:
        a_j[g[0]] += a[g]
        b_j[g[0]] += b[g]
    states: dict[str, dict[str, float]] = {}
    for g in groups:
        x = states.setdefault(NAMES[g[1]], {m: 0.0 for m in ("moves_weight", "exit_weight", "aa", "ab", "bb", "xa",
                                                              "xab", "xba", "xbb")})
        aj, bj = float(a_j[g[0]]), float(b_j[g[0]])
        for m, v in (("moves_weight", b[g]), ("exit_weight", a[g]), ("aa", a[g] * a[g]), ("ab", a[g] * b[g]),
                     ("bb", b[g] * b[g]), ("xa", a[g] * aj), ("xab", a[g] * bj), ("xba", b[g] * aj),
                     ("xbb", b[g] * bj)):
            x[m] += v
    return {"states": states, "lost_journeys": float(np.where(lost, done.w, 0.0).sum()),
            "AA": float(np.multiply(a_j, a_j).sum()), "BB": float(np.multiply(b_j, b_j).sum())}


@pytest.mark.parametrize(("seed", "p_loss"), [(0, 0.2), (1, 0.05), (2, 0.6), (3, 0.0)])
def test_sums_are_the_step_by_step_sums_bit_for_bit(monkeypatch, seed, p_loss):
    monkeypatch.setattr(snapshot, "r6", lambda v: None if v is None else float(v))
    rng = np.random.default_rng(seed)
    steps, follow = _scope(rng, 400, p_loss)
    done = step_shares.counted(steps, np.arange(len(steps.row)), steps.row, follow, 60.0, 20)
    got = loss_estimates.block(steps, done, follow, 60.0, 20, LOSSES)
    ref = _reference(steps, done, len(follow))
    assert got["lost_journeys"] == ref["lost_journeys"]
    assert (got["moments"]["AA"], got["moments"]["BB"]) == (ref["AA"], ref["BB"])
    assert sorted(got["states"]) == sorted(ref["states"])
    for name, mine in got["states"].items():
        for m, v in ref["states"][name].items():
            assert mine[m] == v, (name, m)  # exact: not approx
    lost = np.isin(np.array(NAMES, dtype=object)[steps.dst[done.pick]], LOSSES)
    src = steps.src[done.pick]
    for name, mine in got["states"].items():
        s = NAMES.index(name)
        assert mine["exits"] == int((lost & (src == s)).sum())
        assert mine["moves"] == int((src == s).sum())
        assert mine["journeys"] == len(np.unique(done.pos[src == s]))
