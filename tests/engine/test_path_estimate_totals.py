"""Sequence totals and per-entry medians of `path_estimates` (engine.path_estimate_totals), journeys in progress counted.

Simulation with known truth: journeys start uniformly over 45 days, the data ends then, the window is 30 days.
A journey takes sequence a>b (probability 0.4) or a>c; it converts eventually with probability 0.6 on a>b and
0.3 on a>c, after a quick delay (exponential, mean 2 d), else drops off after a slow one (mean 12 d, known 3 d
after its last step). Durations depend on the outcome, so among the recent journeys already ended by the data
end the converted ones are over-represented: the naive rate of recent journeys is biased, the IPCW one is not.
Then the snapshot: nothing censored gives the completed-only numbers exactly (the journey-by-journey recount,
engine.resolved, is tested on a young demo stream in tests/detectors/test_path_in_progress.py).
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pytest

from detectors import segment_estimates as seg_est
from engine import incidence, ipcw, snapshot
from engine.path_estimate_totals import ScopeRows, scope_block
from engine.paths import SEP
from engine.snapshot import build_snapshots
from fixtures import paper_chain as pc

W, SPAN, H, N, REPS = 30.0, 45.0, 3.0, 1500, 300
CONV_MEAN, DROP_MEAN, SHARE_B = 2.0, 12.0, 0.4
NAMES = [f"a{SEP}b{SEP}{SEP}converted", f"a{SEP}b{SEP}{SEP}dropped", f"a{SEP}c{SEP}{SEP}converted",
         f"a{SEP}c{SEP}{SEP}dropped"]
WITHIN = 1.0 - np.exp(-W / CONV_MEAN)  # P(a conversion happens within the window)


def _truth(p_b: float, p_c: float) -> dict[str, float]:
    """Sequence share, conversion rates within the window, and the median duration of a>b's converted entry."""
    return {"share": SHARE_B, "rate": p_b * WITHIN, "rest": p_c * WITHIN,
            "median": -CONV_MEAN * np.log(1.0 - 0.5 * WITHIN)}  # the conversion delay given <= W


def _replicate(rng: np.random.Generator, p_b: float, p_c: float) -> tuple[ScopeRows, np.ndarray]:
    start = rng.random(N) * SPAN
    on_b = rng.random(N) < SHARE_B
    conv = rng.random(N) < np.where(on_b, p_b, p_c)
    delay = np.where(conv, rng.exponential(CONV_MEAN, N), rng.exponential(DROP_MEAN, N))
    converted = conv & (delay <= W)
    last = np.minimum(delay, W)
    known = np.where(converted, last, np.minimum(last + H, W))
    follow = SPAN - start
    key = np.where(on_b, 0, 2) + np.where(converted, 0, 1)
    rows = ScopeRows(known_t=np.where(known <= follow, known, follow), ok=known <= follow, follow=follow, key=key,
                     seq=np.where(on_b, 0, 1), converted=converted, censored=follow < W, dur=last,
                     length=np.full(N, 2.0), names=NAMES)
    return rows, start


def _entry(block: dict, path: list[str], outcome: str) -> dict:
    return next(e for e in block["path_estimates"]["top"] if e["path"] == path and e["outcome"] == outcome)


@pytest.fixture(scope="module")
def study():
    rng = np.random.default_rng(14)
    out: dict[str, list[float]] = {k: [] for k in ("rate", "rate_se", "rest", "rest_se", "share", "share_se",
                                                   "median", "naive_recent", "n_eff", "resolved")}
    for _ in range(REPS):
        rows, start = _replicate(rng, 0.6, 0.3)
        e = _entry(scope_block(rows, 10), ["a", "b"], "converted")
        for k, field in (("rate", "conversion_rate"), ("rate_se", "conversion_se"), ("rest", "rest_conversion_rate"),
                         ("rest_se", "rest_conversion_se"), ("share", "sequence_share"),
                         ("share_se", "sequence_share_se"), ("median", "median_duration_s"),
                         ("n_eff", "sequence_n_eff"), ("resolved", "sequence_resolved")):
            out[k].append(float(e[field]))
        recent = rows.ok & (rows.key < 2) & (start > SPAN - W)  # a>b journeys started within a window, ended already
        out["naive_recent"].append(float(rows.converted[recent].mean()))
    return {k: np.array(v) for k, v in out.items()}


def _bias_bound(values: np.ndarray) -> float:
    return 4 * values.std(ddof=1) / np.sqrt(len(values))


def test_sequence_totals_are_unbiased_where_recent_completed_journeys_are_not(study):
    truth = _truth(0.6, 0.3)
    for k in ("rate", "rest", "share"):
        assert abs(study[k].mean() - truth[k]) <= _bias_bound(study[k]), k
    # the entry's median duration: IPCW Kaplan–Meier median; its sampling bias is O(1/n), far under 0.5 d here
    assert abs(study["median"].mean() - truth["median"]) <= max(_bias_bound(study["median"]), 0.5)
    naive = study["naive_recent"]
    assert naive.mean() > truth["rate"] + 4 * _bias_bound(naive)  # recent journeys ended early: the quick conversions


def test_sequence_intervals_cover_at_the_nominal_rate(study):
    truth = _truth(0.6, 0.3)
    tolerance = 4 * np.sqrt(0.95 * 0.05 / REPS)
    for k, se in (("rate", "rate_se"), ("rest", "rest_se"), ("share", "share_se")):
        covered = np.mean(np.abs(study[k] - truth[k]) <= incidence.Z95 * study[se])
        assert abs(covered - 0.95) <= tolerance, (k, covered)


def test_effective_n_is_below_the_resolved_count_under_censoring(study):
    assert np.all(study["n_eff"] <= study["resolved"] + 1e-6)
    assert study["n_eff"].mean() < 0.95 * study["resolved"].mean()  # unequal weights cost precision


def test_floored_wald_test_holds_its_level_on_a_null_stream():
    rng = np.random.default_rng(3)
    p_values = []
    for _ in range(REPS):
        rows, _ = _replicate(rng, 0.4, 0.4)
        e = _entry(scope_block(rows, 10), ["a", "b"], "converted")
        side = seg_est.Side(e["conversion_rate"], e["conversion_se"] ** 2, e["sequence_n_eff"], e["sequence_resolved"])
        rest = seg_est.Side(e["rest_conversion_rate"], e["rest_conversion_se"] ** 2, e["rest_n_eff"], 0)
        p_values.append(seg_est.compare(side, rest).p_value)
    rejected = float(np.mean(np.array(p_values) < 0.05))
    assert rejected <= 0.05 + 4 * np.sqrt(0.05 * 0.95 / REPS)


# ------------------------------------------------------------------------------------------
# On the snapshot
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sim_snaps():
    con = duckdb.connect()
    data_end = pc.load_simulation(con, 3000, 11, late_journeys=400)
    cfg = pc.config()
    snaps = build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
    yield con, snaps
    con.close()


def test_nothing_censored_gives_the_completed_only_numbers(sim_snaps):
    _, snaps = sim_snaps
    plain = [s.payload for s in snaps if s.payload["censored"] == 0 and s.payload["completed"]]
    assert plain
    for p in plain:
        done = {(tuple(t["path"]), t["outcome"]): t for t in p["paths"]["top"]}
        assert p["path_estimates"]["conversion_rate"] == round(
            p["outcome_counts"].get(p["conversion_outcome"], 0) / p["completed"], 6)
        for e in p["path_estimates"]["top"]:
            t = done[(tuple(e["path"]), e["outcome"])]
            assert e["sequence_resolved"] == t["sequence_count"] and e["sequence_converted"] == t["sequence_conversions"]
            assert e["sequence_n_eff"] == t["sequence_count"]  # every weight is 1
            assert e["sequence_share"] == round(t["sequence_count"] / p["completed"], 6)
            assert e["conversion_rate"] == t["conversion_rate"]
            assert (e["median_duration_s"], e["median_length"]) == (t["median_duration_s"], t["median_length"])



def test_weights_of_the_ended_journeys_stand_in_for_the_resolved_paths_weights(monkeypatch):
    """engine.snapshot_estimates weighs a scope's ended journeys once and hands path_estimates those weights
    with the pathless ones set to 0: each weight is the journey's own 1 / Ĝ(T), so every float is the same."""
    monkeypatch.setattr(snapshot, "r6", lambda v: None if v is None else float(v))
    rng = np.random.default_rng(11)
    n = 3000
    follow = np.round(rng.uniform(0, 80, n))
    known = np.round(rng.uniform(0, 60, n))
    ended = known <= follow
    ok = ended & (rng.random(n) < 0.8)  # an ended journey without a path has no key
    rows = ScopeRows(
        known_t=known, ok=ok, follow=follow, key=rng.integers(0, 40, n), seq=rng.integers(0, 12, n),
        converted=rng.random(n) < 0.3, censored=follow < 60, dur=np.round(rng.exponential(9, n)),
        length=rng.integers(1, 6, n).astype(float), names=[f"p{i // 3}{SEP}{SEP}o{i % 3}" for i in range(40)])
    of_ended = ipcw.FollowUp(follow).weights(known, ended)
    alone = json.dumps(scope_block(rows, 8))
    assert json.dumps(scope_block(rows, 8, np.where(ok, of_ended, 0.0))) == alone
    wrong = of_ended.copy()
    wrong[ended] = ipcw.FollowUp(follow[ended]).weights(known[ended])  # Ĝ must be every journey's follow-up
    assert json.dumps(scope_block(rows, 8, np.where(ok, wrong, 0.0))) != alone


def test_duration_medians_sort_the_resolved_rows_alone_and_read_as_sorting_everything(monkeypatch):
    """duration_estimates sorts only the resolved rows (the others weigh 0): every median, bound and count is
    ipcw.median's over all rows, sorted by itself, bit for bit (ties in durations and lengths; NaN durations on
    unresolved rows)."""
    monkeypatch.setattr(snapshot, "r6", lambda v: None if v is None else float(v))
    rng = np.random.default_rng(12)
    n = 4000
    follow, known = np.round(rng.uniform(0, 80, n)), np.round(rng.uniform(0, 60, n))
    ok = (known <= follow) & (rng.random(n) < 0.9)
    conv = rng.random(n) < 0.3  # converters are longer and slower: each class has its own medians
    dur = np.where(ok | (rng.random(n) < 0.5), np.round(rng.exponential(np.where(conv, 20, 6))), np.nan)
    rows = ScopeRows(known_t=known, ok=ok, follow=follow, key=rng.integers(0, 5, n), seq=rng.integers(0, 5, n),
                     converted=conv, censored=follow < 60, dur=dur, length=rng.integers(1, 6, n) + 3.0 * conv,
                     names=[f"p{i}{SEP}{SEP}o" for i in range(5)])
    w = ipcw.weights(known, ok, follow)
    got = scope_block(rows, 2)["duration_estimates"]
    for part, mask in ((got, ok), (got["by_class"]["converted"], ok & conv), (got["by_class"]["lost"], ok & ~conv)):
        d = ipcw.median(dur, np.where(mask, w, 0.0))
        m = ipcw.median(rows.length, np.where(mask, w, 0.0))
        assert (part["median_s"], part["median_s_lower"], part["median_s_upper"], part["resolved"]) == (
            d.estimate, d.lower, d.upper, d.resolved)
        assert part["median_length"] == m.estimate


@pytest.mark.parametrize("seed,n,keys,top", [(0, 5000, 40, 10), (1, 300, 3, 10), (2, 0, 5, 3), (3, 2000, 70000, 12)])
def test_rows_of_each_chosen_key_are_its_rows_ascending(seed: int, n: int, keys: int, top: int) -> None:
    """_rows_of gives every chosen key exactly np.flatnonzero(inverse == key), in the chosen keys' order (the medians
    then read the same values in the same order as a mask per entry); unchosen keys and keys without rows too."""
    from engine.path_estimate_totals import _rows_of

    rng = np.random.default_rng(seed)
    inverse = (rng.random(n) ** 3 * keys).astype(np.int64)  # skewed: some keys hold most rows
    chosen = [int(k) for k in rng.permutation(keys)[:top]]
    got = _rows_of(inverse, chosen, keys)
    assert len(got) == len(chosen)
    for key, rows in zip(chosen, got):
        assert np.array_equal(rows, np.flatnonzero(inverse == key))
