"""What is at stake: the conversions (or, for a loss, the lost journeys) per week associated with a finding.

Every finding the runner keeps gets a typed evidence field `at_stake` (the
narrator heads each item with it; engine/scoring.py ranks by it):

    measure               "conversions", or "losses" for dropoff_point / dropoff_cluster
    outcome               the conversion outcome counted, or the loss outcomes in words ("declined or cancelled")
    outcomes              (losses only) the loss outcomes as a list
    per_journey           conversions per journey with the pattern as observed minus conversions in the
                          counterfactual below (signed; > 0: the pattern goes with more conversions);
                          for a loss: lost journeys whose last step is the finding's state(s), per journey
    baseline_per_journey  the journey's conversions per journey, B(start, conversion) (or its rate);
                          for a loss: all lost journeys per journey
    share                 per_journey / baseline_per_journey (signed): the share of the journey's own
                          conversions, or of its own losses, at stake. engine/scoring.py ranks by |share|,
                          so the largest losses and the largest drivers meet on one scale
    per_week, low, high   per_journey × journeys started per week, with a 95 % percentile interval
    in_window             per_journey × the snapshot's journeys: the same number over the window itself
                          (use it when window_days < 7, where per_week is an extrapolation)
    journeys_per_week     the snapshot's journeys (censored included) per 7 days of its window
    window_days           the snapshot window, so a reader sees when "per week" is an extrapolation
    direction             "more" or "fewer": the observed pattern goes with more or fewer conversions (losses)
    protect               (activation_driver, necessary_for_conversion) false when journeys that never reach
                          the state convert *more* in the re-solved chain (per_journey < 0, e.g. BPI
                          "W_Nabellen offertes"): the state is then not something to protect, whatever
                          its reach statistics say; the feed ranks it by |share| with the sign kept
    method                "chain" (the absorbing chain re-solved) or "counts" (observed rates)
    counterfactual        what per_journey compares against, in words
    first_order_approximation  true when the snapshot's model check prefers a second-order chain:
                          removal effects, B and every "chain" number here are then approximations

Counterfactual per finding type ("chain" unless said):
    activation_driver, necessary_for_conversion   journeys never reach the state (the paper's removal:
                                                  edges into it deleted, predecessors renormalised)
    dropoff_point, dropoff_cluster                none, counts: the lost journeys that leave right after the
                                                  state(s), observed (evidence exits of lost_journeys; each
                                                  lost journey has one last state, so these never double count;
                                                  on in-progress estimates: loss_share × the estimated lost journeys,
                                                  over every journey of the scope)
    repeated_visit                                no return to the state after its first visit (the chain doubled
                                                  into before/after-first-visit layers; returns deleted)
    regression (edge)                             the edge's probability set back to its earlier value
    regression (outcome), fast/slow path,         counts: the observed conversion rate difference times
    segment reach / outcome rate                  the share of journeys it concerns
    segment diverges_from                         the segment's chain against the rest's chain

The interval redraws each transient state's outgoing counts multinomially
(chain; 200 redraws per snapshot, fewer for chains over 60 states, seeded from
the snapshot id and shared by its findings, solved as one batch) or the rates
binomially (counts; 200 draws seeded from the finding), so the same input
always gives the same interval. Like engine/uncertainty.py,
it treats transitions as independent, so it is too narrow where the data is
not first-order (flagged by `first_order_approximation`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import numpy as np

from detectors.dropoff import either
from detectors.stats import r6
from detectors.view import SnapView
from engine.feed import parse_ts
from engine.markov import ChainMetrics, _trapped_batch
from engine.uncertainty import _redraw
from ontology.errors import EngineError
from ontology.model import Finding

# Evidence keys that describe a finding for ranking and narration but are not recomputable facts:
# detectors/facts.py leaves them out of the fact graph (the bundle's `finding` still carries them).
FINDING_ONLY = ("at_stake", "scope", "first_order_approximation", "values", "segment_key")
REPLICATES = 200
SMALL_CHAIN = 60      # chains with more states get fewer replicates (the batched solve grows as states³) …
MIN_REPLICATES = 40   # … but never fewer than this
MAX_CHAIN_STATES = 800  # work cap: the redraws hold 40 × n × n floats a few times over (5,000 states: 7.4 GB each,
                        # OOM-killed); above it a chain finding gets its point estimate only (no interval) …
MAX_POINT_STATES = 3000  # … from one dense solve (3,000 states: 72 MB, about a second); above, no at_stake,
                         # as an unsolvable chain gets none
LEVEL = 0.95
LOSS_TYPES = ("dropoff_point", "dropoff_cluster")                 # stated in lost journeys, not conversions
REMOVAL_TYPES = ("activation_driver", "necessary_for_conversion")  # the paper's removal counterfactual
Counterfactual = Callable[[np.ndarray, ChainMetrics], np.ndarray]   # edits a copy of the counts
Delta = Callable[[np.ndarray, ChainMetrics], Any]                      # counts (batched) → B_cf(start, conversion)


def at_stake(f: Finding, view: SnapView, all_view: SnapView | None, cache: dict[str, Any]) -> dict[str, Any] | None:
    """The `at_stake` evidence of one finding, or None when no counterfactual applies or the chain cannot be solved.

    `cache` holds each snapshot's redraws between findings (one dict per detector run)."""
    try:
        got = _estimate(f, view, all_view, cache)
    except (EngineError, np.linalg.LinAlgError, ValueError, KeyError, ZeroDivisionError):
        return None
    if got is None:
        return None
    point, reps, base, method, words, scale_view = got
    per_week_rate = journeys_per_week(scale_view)
    low, high = (np.quantile(reps, [(1 - LEVEL) / 2, (1 + LEVEL) / 2]) if len(reps) >= 2 else (point, point))
    out: dict[str, Any] = {
        "measure": "conversions", "outcome": view.conversion, "per_journey": point, "baseline_per_journey": base,
        "per_week": point * per_week_rate, "low": float(low) * per_week_rate, "high": float(high) * per_week_rate,
        "level": LEVEL, "journeys_per_week": per_week_rate,
        "in_window": point * int(scale_view.payload.get("journeys") or scale_view.completed), "window_days": window_days(scale_view),
        "direction": "more" if point >= 0 else "fewer", "method": method, "counterfactual": words,
        "first_order_approximation": second_order(scale_view),
        "share": point / base if base > 0 else point,
    }
    if f.type in LOSS_TYPES:
        out.update(measure="losses", outcome=str(f.evidence.get("dropoff_outcome")),
                   outcomes=list(f.evidence.get("loss_outcomes") or []), first_order_approximation=False)
    if f.type in REMOVAL_TYPES:
        out["protect"] = bool(point > 0)
    return {k: r6(float(v)) if isinstance(v, (float, np.floating)) else v for k, v in out.items()}


def second_order(view: SnapView) -> bool:
    return (view.payload.get("model_check") or {}).get("preferred") == "second_order"


def window_days(view: SnapView) -> float:
    start, end = (parse_ts(t) for t in view.window)
    return max((end - start).total_seconds() / 86400.0, 1e-9)


def journeys_per_week(view: SnapView) -> float:
    started = int(view.payload.get("journeys") or view.completed)
    return started * 7.0 / window_days(view)


def _estimate(f: Finding, view: SnapView, all_view: SnapView | None, cache: dict[str, Any]) -> tuple | None:
    name = f.subject.split(":", 1)[1]
    if f.type in REMOVAL_TYPES:
        return _chain(f, view, _edited(_without_entries({name})), f"journeys never reach {name}", cache)
    if f.type in LOSS_TYPES:
        return _losses(f, view)
    if f.type == "repeated_visit":
        return _chain(f, view, _no_returns(name), f"no return to {name} after its first visit", cache)
    if f.type == "regression":
        return _regression(f, view, name, cache)
    if f.type in ("fast_path", "slow_path"):
        return _path(f, view)
    if f.type == "segment_divergence" and all_view is not None:
        return _segment(f, view, all_view)
    return None


def _chain(f: Finding, view: SnapView, delta: Delta, words: str, cache: dict[str, Any]) -> tuple:
    """Point estimate and bootstrap replicates of a chain counterfactual (one redraw per snapshot, shared)."""
    chain = _metrics(view)
    if len(chain.states) > MAX_POINT_STATES:
        raise EngineError(f"{len(chain.states)} states: over the at-stake solve cap of {MAX_POINT_STATES}")
    if len(chain.states) > MAX_CHAIN_STATES:  # no redraws: the point estimate, its interval collapsed onto it
        observed = float(_absorbed(chain.counts, chain))
        return observed - float(delta(chain.counts, chain)), np.array([]), observed, "chain", words, view
    observed, redraws, observed_reps = _replicates(view, chain, cache)
    point = observed - float(delta(chain.counts, chain))
    try:
        reps = observed_reps - delta(redraws, chain)
    except (EngineError, np.linalg.LinAlgError):  # a near-singular redraw: no interval rather than a wrong one
        reps = np.array([])
    return point, reps[np.isfinite(reps)], observed, "chain", words, view


def _replicates(view: SnapView, chain: ChainMetrics, cache: dict[str, Any]) -> tuple[float, np.ndarray, np.ndarray]:
    """(B(start, conv), redrawn counts, their B(start, conv)), computed once per snapshot."""
    if view.snapshot_id not in cache:
        n = len(chain.states)
        replicates = max(MIN_REPLICATES, min(REPLICATES, int(REPLICATES * (SMALL_CHAIN / max(n, 1)) ** 2)))
        redraws = _redraw(chain.counts, replicates, np.random.default_rng(_seed_of(view.snapshot_id)))
        cache[view.snapshot_id] = (float(_absorbed(chain.counts, chain)), redraws, _absorbed(redraws, chain))
    return cache[view.snapshot_id]


def _edited(cf: Counterfactual) -> Delta:
    """B_cf(start, conv) for counts edited by `cf` (any leading batch axes)."""
    return lambda counts, chain: _absorbed(cf(np.array(counts, dtype=float, copy=True), chain), chain)


def _no_returns(state: str) -> Delta:
    """B_cf(start, conv) on the chain doubled into layers "before the first visit to the state" and "after it".

    An edge into the state always lands in layer 1, so the doubled chain has the original B; the
    counterfactual deletes the edges into it from layer 1 (the returns), keeping first visits."""
    return lambda counts, chain: _returns_absorbed(counts, chain, chain.states.index(state))


def _returns_absorbed(counts: np.ndarray, chain: ChainMetrics, k: int) -> Any:
    doubled = _doubled(counts, chain, k)
    n = len(chain.states)
    cut = np.array(doubled.counts, copy=True)
    cut[..., n:, n + k] = 0.0
    return _absorbed(cut, doubled)


def _doubled(counts: np.ndarray, chain: ChainMetrics, k: int) -> ChainMetrics:
    n, m = len(chain.states), len(chain.outcomes)
    out = np.zeros((*counts.shape[:-2], 2 * n, 2 * n + m))
    for layer in (0, 1):
        rows = slice(layer * n, (layer + 1) * n)
        out[..., rows, 2 * n:] = counts[..., :, n:]
        out[..., rows, layer * n: (layer + 1) * n] = counts[..., :, :n]
    out[..., :n, n + k] += out[..., :n, k]  # a first visit to k moves the journey into layer 1
    out[..., :n, k] = 0.0
    states = tuple(f"{s}#0" for s in chain.states) + tuple(f"{s}#1" for s in chain.states)
    start = chain.states.index(chain.start) + (n if chain.states.index(chain.start) == k else 0)
    return ChainMetrics(states, chain.outcomes, states[start], chain.conversion_outcome, chain.dropoff_outcome, out)


def _absorbed(counts: np.ndarray, chain: ChainMetrics) -> Any:
    """B(start, conversion) for counts of shape (rows, cols) or (batch, rows, cols): one solve per chain.

    engine.markov's rules: a state never left drops off, and so does a state that can no longer
    reach any outcome. Row `start` of N solves (I − Q)ᵀ x = e_start (no inverse)."""
    c = np.array(counts, dtype=float, copy=True)
    single = c.ndim == 2
    c = c[None] if single else c
    n = len(chain.states)
    drop = n + chain.outcomes.index(chain.dropoff_outcome)
    c[c.sum(axis=-1) == 0, drop] = 1.0
    P = c / c.sum(axis=-1, keepdims=True)
    stuck = _trapped_batch(P[..., :n], P[..., n:], np.zeros(P.shape[:2], dtype=bool))
    if stuck.any():
        P[stuck] = 0.0
        P[stuck, drop] = 1.0
    rhs = np.zeros((P.shape[0], n, 1))
    rhs[:, chain.states.index(chain.start), 0] = 1.0
    row = np.linalg.solve(np.swapaxes(np.eye(n)[None] - P[..., :n], 1, 2), rhs)[..., 0]
    out = np.einsum("bi,bi->b", row, P[..., n + chain.outcomes.index(chain.conversion_outcome)])
    return float(out[0]) if single else out


def _without_entries(targets: set[str]) -> Counterfactual:
    def cf(counts: np.ndarray, chain: ChainMetrics) -> np.ndarray:
        for t in targets:
            counts[..., :, chain.states.index(t)] = 0.0
        return counts
    return cf


def _losses(f: Finding, view: SnapView) -> tuple:
    """Lost journeys whose last step is one of the finding's states, per journey (observed, binomial interval).

    Every lost journey leaves from exactly one last state, so these add up over states to all losses;
    the baseline is all lost journeys per journey, and their ratio is the finding's `loss_share`."""
    states = list(f.evidence.get("states") or [f.subject.split(":", 1)[1]])
    n = max(1, view.completed)
    exits, lost = float(f.evidence["exits"]), float(f.evidence["lost_journeys"])
    if "estimator" in f.evidence:  # in-progress estimates: lost journeys had every journey been followed
        n = max(1, int(view.payload.get("journeys") or view.completed))
        exits = float(f.evidence["loss_share"]) * lost
    words = f"lost journeys whose last step is {either(states)}"
    return _counts(f, [(exits / n, n)], lambda r: r[0], lost / n, words, view)


def _regression(f: Finding, view: SnapView, name: str, cache: dict[str, Any]) -> tuple | None:
    ev = f.evidence
    if f.subject.startswith("outcome:"):
        return _counts(f, [(ev["p_after"], ev["n_after"]), (ev["p_before"], ev["n_before"])],
                       lambda r: r[0] - r[1], float(ev["p_after"]), "the conversion rate of the earlier snapshot", view)
    chain = _metrics(view)
    src, dst = _edge(name, chain)
    target = float(ev["p_before"])

    def cf(counts: np.ndarray, ch: ChainMetrics) -> np.ndarray:
        i = ch.states.index(src)
        j = ch.states.index(dst) if dst in ch.states else len(ch.states) + ch.outcomes.index(dst)
        rest = counts[..., i, :].sum(axis=-1) - counts[..., i, j]
        counts[..., i, j] = target / (1.0 - target) * rest if target < 1.0 else counts[..., i, :].sum(axis=-1)
        return counts
    return _chain(f, view, _edited(cf), f"{src} → {dst} at its earlier probability {target:.4f}", cache)


def _edge(name: str, chain: ChainMetrics) -> tuple[str, str]:
    """Split 'src->dst' at the arrow whose sides are a state and a state or outcome."""
    pos = name.find("->")
    while pos >= 0:
        src, dst = name[:pos], name[pos + 2:]
        if src in chain.states and (dst in chain.states or dst in chain.outcomes):
            return src, dst
        pos = name.find("->", pos + 1)
    raise ValueError(f"edge {name!r} names no edge of the chain")


def _path(f: Finding, view: SnapView) -> tuple:
    ev = f.evidence
    if "estimator" in ev:  # journeys in progress: the estimated rates at their effective sizes (detectors.path_quality)
        return _counts(f, [(float(ev["conversion_rate"]), int(ev["count"])),
                           (float(ev["rest_conversion_rate"]), int(ev["n_rest"]))],
                       lambda r: float(ev["share"]) * (r[0] - r[1]), float(ev["baseline"]),
                       "journeys on this path converting at the rate of all other journeys", view)
    count, rate = int(ev["count"]), float(ev["conversion_rate"])
    n = view.completed
    conv_rest = view.outcome_count(view.conversion) - round(rate * count)
    rest_rate = conv_rest / max(1, n - count)
    share = count / max(1, n)
    return _counts(f, [(rate, count), (rest_rate, n - count)], lambda r: share * (r[0] - r[1]),
                   view.outcome_count(view.conversion) / max(1, n),
                   "journeys on this path converting at the rate of all other journeys", view)


def _segment(f: Finding, seg: SnapView, base: SnapView) -> tuple | None:
    ev = f.evidence
    share = (seg.completed / max(1, base.completed) if "journeys_segment" not in ev  # in-progress: every journey
             else ev["journeys_segment"] / max(1, ev["journeys_segment"] + ev["journeys_rest"]))
    base_rate = base.outcome_count(base.conversion) / max(1, base.completed)
    if f.predicate == "diverges_from":
        return None if not seg.completed else _segment_chains(f, seg, base, share, base_rate)
    sides = [(ev["reach_segment"], ev["n_segment"]), (ev["reach_rest"], ev["n_rest"])]
    if ev.get("kind") == "outcome_rate_difference":
        return _counts(f, sides, lambda r: share * (r[0] - r[1]), base_rate,
                       "the segment converting at the rate of the rest", base)
    state = f.subject.split(":", 1)[1]
    n_r = base.reach_count(state)
    x_r = base.reach_outcome(state, base.conversion)
    x_nr = base.outcome_count(base.conversion) - x_r
    sides += [(x_r / max(1, n_r), n_r), (x_nr / max(1, base.completed - n_r), base.completed - n_r)]
    return _counts(f, sides, lambda r: share * (r[0] - r[1]) * (r[2] - r[3]), base_rate,
                   f"the segment reaching {state} as often as the rest, at the conversion gap of reaching it", base)


def _segment_chains(f: Finding, seg: SnapView, base: SnapView, share: float, base_rate: float) -> tuple:
    """share × (B_segment − B_rest): the rest's chain is all-data counts minus the segment's."""
    whole, part = _metrics(base), _metrics(seg)
    aligned = np.zeros_like(whole.counts)
    names = whole.states + whole.outcomes
    for i, s in enumerate(part.states):
        for j, d in enumerate(part.states + part.outcomes):
            if s in whole.states and d in names:
                aligned[whole.states.index(s), names.index(d)] = part.counts[i, j]
    rest = np.clip(whole.counts - aligned, 0, None)
    point = share * (_absorbed(aligned, whole) - _absorbed(rest, whole))
    rng = np.random.default_rng(_seed(f))
    try:
        reps = share * (_absorbed(_redraw(aligned, REPLICATES, rng), whole)
                        - _absorbed(_redraw(rest, REPLICATES, rng), whole))
    except (EngineError, np.linalg.LinAlgError):
        reps = np.array([])
    return point, reps, base_rate, "chain", "the segment's journeys moving like the rest's", base


def _counts(f: Finding, sides: list[tuple[float, int]], fn: Callable[[list[float]], float], base: float,
            words: str, view: SnapView) -> tuple:
    """A difference of observed rates, with each rate redrawn binomially for the interval."""
    rates = [float(r) for r, _ in sides]
    point = fn(rates)
    rng = np.random.default_rng(_seed(f))
    draws = [rng.binomial(max(int(n), 0), min(max(r, 0.0), 1.0), REPLICATES) / max(int(n), 1) for r, n in sides]
    reps = np.array([fn([float(d[i]) for d in draws]) for i in range(REPLICATES)])
    return point, reps, base, "counts", words, view


def _metrics(view: SnapView) -> ChainMetrics:
    return view.snap.metrics


def _seed(f: Finding) -> int:
    return _seed_of("|".join((f.snapshot_id, f.type, f.subject, f.predicate, f.object, f.segment or "",
                              f.release or "")))


def _seed_of(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")

