"""Drop-off numbers from journeys still in progress (engine.loss_estimates): unbiased, covering, exact when mature.

Simulation with known truth: journeys start uniformly over SPAN days (data end = SPAN, window W = 30 d, drop-off
horizon H = 10 d) and move S0 → S1 → S2, S1 looping back to S0 sometimes. Half the journeys are quick (steps
minutes apart) and are mostly lost at S0 (an explicit "declined", known at once), half are slow (days between
steps) and are lost later, mostly by inactivity: outcome-dependent durations, so the journeys already ended at
the data end over-represent quick losses at S0. A gap longer than H is a drop-off ("dropped") known H after
the step. Only 3 of the 33 days of starts have been followed for a whole window.
Bounds come from the Monte-Carlo standard error (4 SE), not fixed constants.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from engine import loss_estimates, step_shares
from engine.incidence import Z95

W, H, SPAN, N, REPS = 30.0, 10.0, 33.0, 1500, 200
NAMES = ["S0", "S1", "S2", "converted", "dropped", "declined"]
LOSSES = ["dropped", "declined"]
QUICK_GAP, SLOW_GAP = 0.05, 3.0               # mean days between steps
LOSS_AT = {0: (0.6, 0.15), 1: (0.1, 0.4)}    # P(loss at S0 / S1) for (quick, slow) journeys
BACK, CONVERT, MAX_STEPS = 0.25, 0.6, 12


def simulate(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every step of n whole journeys: journey, entry time since its start, source, destination; each journey's
    end (when its outcome became known, since its start)."""
    slow = rng.random(n) < 0.5
    state = np.zeros(n, dtype=np.int64)
    t = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    end = np.zeros(n)
    rows, times, src, dst = [], [], [], []
    for k in range(MAX_STEPS):
        j = np.flatnonzero(alive)
        if not len(j):
            break
        s, u = state[j], rng.random(len(j))
        gap = rng.exponential(np.where(slow[j], SLOW_GAP, QUICK_GAP))
        p_loss = np.select([s == 0, s == 1], [np.where(slow[j], LOSS_AT[0][1], LOSS_AT[0][0]),
                                              np.where(slow[j], LOSS_AT[1][1], LOSS_AT[1][0])], 1 - CONVERT)
        loss_name = np.where(s == 0, 5, 4)  # S0 loses by an explicit "declined" (known at once), the others by inactivity
        nxt = np.where(u < p_loss, loss_name,
                       np.where(s == 2, 3, np.where((s == 1) & (u < p_loss + BACK), 0, s + 1)))
        nxt = np.where(gap > H, 4, nxt)  # nothing within H: dropped
        nxt = np.where((k == MAX_STEPS - 1) & (nxt < 3), 4, nxt)
        rows.append(j), times.append(t[j]), src.append(s), dst.append(nxt)
        done = nxt >= 3
        end[j[done]] = t[j[done]] + np.where(nxt[done] == 4, H, gap[done])
        alive[j[done]] = False
        t[j] += gap
        state[j] = np.where(done, state[j], nxt)
    order = np.lexsort((np.concatenate(times), np.concatenate(rows)))
    return {"row": np.concatenate(rows)[order], "s": np.concatenate(times)[order],
            "src": np.concatenate(src)[order], "dst": np.concatenate(dst)[order], "end": end}


def _truth() -> tuple[float, float]:
    """P(a move out of S0 goes to a loss) and the share of lost journeys lost right after S0, from 400 000
    journeys followed to their end."""
    sim = simulate(400_000, np.random.default_rng(1))
    out0 = sim["src"] == 0
    lost = sim["dst"] >= 4
    return float(lost[out0].mean()), float((lost & out0).sum() / lost.sum())


def replicate(rng: np.random.Generator) -> dict[str, float]:
    sim = simulate(N, rng)
    start = rng.random(N) * SPAN
    follow = SPAN - start
    known = sim["end"] <= follow
    row = sim["row"]
    keep = (sim["s"] + H <= follow[row]) | known[row]  # engine.step_shares: resolved steps
    steps = step_shares.Steps(row=row[keep], s=sim["s"][keep], known_t=np.where(known, sim["end"], np.nan)[row[keep]],
                              src=sim["src"][keep], dst=sim["dst"][keep], names=NAMES)
    done = step_shares.counted(steps, np.arange(int(keep.sum())), row[keep], follow, W, int(H))
    block = loss_estimates.block(steps, done, follow, W, int(H), LOSSES)
    t = loss_estimates.loss_test(block, ["S0"])
    lost = sim["dst"] >= 4
    ended = known[row]  # naive: the journeys whose end is known, unweighted
    mature = (start + W <= SPAN)[row]
    return {"new": t.exit_probability, "new_se": t.se, "share": t.loss_share, "share_se": t.loss_share_se,
            "naive": float(lost[ended & (sim["src"] == 0)].mean()),
            "old": float(lost[mature & (sim["src"] == 0)].mean()),
            "n_new": float(len(np.unique(row[keep]))), "n_old": float((start + W <= SPAN).sum())}


@pytest.fixture(scope="module")
def study() -> tuple[tuple[float, float], dict[str, np.ndarray]]:
    rng = np.random.default_rng(5)
    runs = [replicate(rng) for _ in range(REPS)]
    return _truth(), {k: np.array([r[k] for r in runs]) for k in runs[0]}


def _mc_bound(x: np.ndarray) -> float:
    return 4 * float(x.std(ddof=1)) / np.sqrt(len(x))


def test_estimates_are_unbiased_where_finished_journeys_are_not(study):
    (exit0, share0), runs = study
    assert abs(runs["new"].mean() - exit0) <= _mc_bound(runs["new"]) + 5e-4  # + the truth's own MC error
    assert abs(runs["share"].mean() - share0) <= _mc_bound(runs["share"]) + 5e-4
    assert runs["naive"].mean() - exit0 > _mc_bound(runs["naive"]) + 5e-4  # quick losses ended first: biased up
    assert abs(runs["old"].mean() - exit0) <= _mc_bound(runs["old"]) + 5e-4  # mature only: unbiased ...
    assert runs["n_new"].mean() > 5 * runs["n_old"].mean()                 # ... on a tenth of the journeys


def test_intervals_cover_at_the_nominal_rate(study):
    (exit0, share0), runs = study
    tolerance = 4 * np.sqrt(0.95 * 0.05 / REPS)
    for est, se, truth in (("new", "new_se", exit0), ("share", "share_se", share0)):
        covered = np.mean(np.abs(runs[est] - truth) <= Z95 * runs[se])
        assert abs(covered - 0.95) <= tolerance, (est, covered)


def _per_journey(sim_steps: step_shares.Steps, w: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A_js, B_js journey by journey (the definition the moments are sums of)."""
    a, b = np.zeros((n, 3)), np.zeros((n, 3))
    lost = np.isin(np.array(NAMES, dtype=object)[sim_steps.dst], LOSSES)
    np.add.at(a, (sim_steps.row, sim_steps.src), np.where(lost, w, 0.0))
    np.add.at(b, (sim_steps.row, sim_steps.src), w)
    return a, b


def test_clustered_variance_is_exact_for_a_state_and_an_upper_bound_for_a_cluster():
    rng = np.random.default_rng(3)
    sim = simulate(400, rng)
    follow = rng.random(400) * 14.0  # no journey followed a whole window: positivity leaves late steps out
    known = sim["end"] <= follow
    keep = (sim["s"] + H <= follow[sim["row"]]) | known[sim["row"]]
    row = sim["row"][keep]
    steps = step_shares.Steps(row=row, s=sim["s"][keep], known_t=np.where(known, sim["end"], np.nan)[row],
                              src=sim["src"][keep], dst=sim["dst"][keep], names=NAMES)
    every = np.arange(len(row))
    done = step_shares.counted(steps, every, row, follow, W, int(H))
    block = loss_estimates.block(steps, done, follow, W, int(H), LOSSES)
    assert len(done.pick) < len(every)  # positivity left some late steps out: the moments use the same steps
    a, b = _per_journey(step_shares.Steps(row=row[done.pick], s=steps.s[done.pick], known_t=steps.known_t[done.pick],
                                          src=steps.src[done.pick], dst=steps.dst[done.pick], names=NAMES), done.w, 400)
    for members in (["S0"], ["S0", "S1"]):
        cols = [NAMES.index(s) for s in members]
        a_s, b_s = a[:, cols].sum(axis=1), b[:, cols].sum(axis=1)
        a_r, b_r = a.sum(axis=1) - a_s, b.sum(axis=1) - b_s
        p_s, p_r = a_s.sum() / b_s.sum(), a_r.sum() / b_r.sum()
        exact = np.sum(((a_s - p_s * b_s) / b_s.sum()) ** 2)
        share = a_s.sum() / a.sum()
        exact_share = np.sum(((a_s - share * a.sum(axis=1)) / a.sum()) ** 2)
        t = loss_estimates.loss_test(block, members)
        assert t.exit_probability == pytest.approx(p_s) and t.baseline_exit == pytest.approx(p_r)
        assert t.loss_share_se == pytest.approx(np.sqrt(exact_share), rel=1e-4)  # one loss step per journey: exact
        if len(members) == 1:
            assert t.se == pytest.approx(np.sqrt(exact), rel=1e-4)
        else:
            assert t.se >= np.sqrt(exact) * (1 - 1e-6)


def test_the_exit_test_holds_its_level_when_every_state_loses_alike(monkeypatch):
    """Null: every move loses with 0.3 wherever it starts (quick and slow journeys alike, so durations still
    differ by journey): z of each state against the rest is standard normal, rejections at the nominal rate."""
    monkeypatch.setattr(sys.modules[__name__], "LOSS_AT", {0: (0.3, 0.3), 1: (0.3, 0.3)})
    monkeypatch.setattr(sys.modules[__name__], "CONVERT", 0.7)
    monkeypatch.setattr(sys.modules[__name__], "SLOW_GAP", 1.0)  # a gap longer than H (a drop-off) all but never
    rng = np.random.default_rng(11)
    z, p = [], []
    for _ in range(300):
        sim = simulate(800, rng)
        follow = SPAN - rng.random(800) * SPAN
        known, row = sim["end"] <= follow, sim["row"]
        keep = (sim["s"] + H <= follow[row]) | known[row]
        steps = step_shares.Steps(row=row[keep], s=sim["s"][keep], known_t=np.where(known, sim["end"], np.nan)[row[keep]],
                                  src=sim["src"][keep], dst=sim["dst"][keep], names=NAMES)
        done = step_shares.counted(steps, np.arange(int(keep.sum())), row[keep], follow, W, int(H))
        block = loss_estimates.block(steps, done, follow, W, int(H), LOSSES)
        for state in ("S0", "S1"):
            t = loss_estimates.loss_test(block, [state])
            z.append(t.z), p.append(t.p_value)
    n = len(p)
    assert abs(np.mean(np.array(p) < 0.05) - 0.05) <= 4 * np.sqrt(0.05 * 0.95 / n)
    assert abs(np.std(z) - 1.0) <= 4 / np.sqrt(2 * n) and abs(np.mean(z)) <= 4 / np.sqrt(n)
