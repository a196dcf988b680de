"""Drop-off points and clusters (paper 6.2.2), where a loss is any outcome other than conversion."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from detectors.context import Context
from detectors.defaults import DropoffConfig
from detectors.registry import register
from detectors.stats import two_proportion_z
from detectors.view import SnapView
from engine import loss_estimates
from engine.snapshot_estimates import NOT_YET
from ontology.model import Finding
from ontology.names import path_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Exit:
    state: str
    exits: int
    out: int  # moves out (effective on the estimates)
    z: float
    p: float
    by_rate: bool  # qualified by its per-move exit rate (else by its share of all lost journeys)


def loss_outcomes(view: SnapView) -> list[str]:
    """Every outcome other than the conversion: explicit failures (declined, lost…) and inactivity alike."""
    return [o for o in view.outcomes if o != view.conversion]


def uses_estimates(view: SnapView) -> bool:
    """In-progress estimates when the scope has censored journeys and carries them; with nothing censored the
    completed-only counts are the same numbers, so they are used unchanged."""
    p = view.payload
    return int(p.get("censored") or 0) > 0 and all(k in p for k in ("loss_estimates", "resolved_shares",
                                                                       "reach_estimates"))


def loss_evidence(view: SnapView, states: list[str]) -> dict[str, Any]:
    """The counts behind a drop-off finding on `states` (one state, or a cluster's), with its test.

    Per move: exits = moves from the states straight into a loss, out of all their moves, tested
    against every other state's moves (two-proportion z). Per journey: each lost journey leaves
    from exactly one last state, so `loss_share` = lost journeys whose last state is one of
    `states` / all lost journeys. narrator.recompute_formulas recomputes a fact with this very function.
    On a scope with censored journeys: the same numbers from the in-progress estimates (`_estimated`).
    """
    if uses_estimates(view):
        return _estimated(view, states)
    losses = loss_outcomes(view)
    by_outcome = {o: sum(view.count(s, o) for s in states) for o in losses}
    exits = sum(by_outcome.values())
    out = sum(view.out_total(s) for s in states)
    total_exit = sum(view.count(s, o) for s in view.states for o in losses)
    total_out = sum(view.out_total(s) for s in view.states)
    z, p = two_proportion_z(exits, out, total_exit - exits, total_out - out)
    return {
        "exit_probability": exits / out if out else 0.0, "exits": exits,
        "baseline_exit": (total_exit - exits) / max(1, total_out - out),
        "loss_outcomes": losses, "loss_exits": {o: n for o, n in by_outcome.items() if n},
        "lost_journeys": total_exit, "loss_share": exits / total_exit if total_exit else 0.0,
        "reach": max(view.reach(s) for s in states), "n_reached": max(view.reach_count(s) for s in states),
        "dropoff_outcome": either(losses), "n": out, "z": z, "p_value": p,
    }


def _estimated(view: SnapView, states: list[str]) -> dict[str, Any]:
    """loss_evidence from the scope's `loss_estimates` (engine.loss_estimates): IPCW resolved moves, Wald z on
    the difference with the journey-clustered variance floored at the binomial one at each side's effective n.
    `n` and `exits` are effective moves (n_eff, n_eff × exit probability); the raw counts stand beside them."""
    p = view.payload
    block = p["loss_estimates"]
    t = loss_estimates.loss_test(block, states)
    reach = [p["reach_estimates"].get(s) or {} for s in states]
    n = round(t.n_eff)
    ev: dict[str, Any] = {
        "exit_probability": t.exit_probability, "exits": round(t.exit_probability * n),
        "baseline_exit": t.baseline_exit, "loss_outcomes": loss_outcomes(view),
        "lost_journeys": round(t.lost_journeys), "loss_share": t.loss_share,
        # n_reached: effective journeys with a move out (n_eff × journeys per resolved move, so ≤ n as when
        # counted); journeys_reached: every journey seen entering the states so far
        "reach": max(float(r.get("estimate") or 0.0) for r in reach),
        "n_reached": round(n * t.journeys / t.moves) if t.moves else 0,
        "journeys_reached": max(int(r.get("reached") or 0) for r in reach),
        "dropoff_outcome": either(loss_outcomes(view)), "n": n, "z": t.z, "p_value": t.p_value,
        "estimator": loss_estimates.ESTIMATOR, "n_eff": t.n_eff, "baseline_n_eff": t.baseline_n_eff,
        "se": t.se, "baseline_se": t.baseline_se, "loss_share_se": t.loss_share_se,
        "moves_resolved": t.moves, "exits_resolved": t.exits, "journeys": int(p.get("journeys") or 0),
        **{f"journeys_{k}": int(v) for k, v in sorted((p.get("observation") or {}).items())},
    }
    if int(block["entered_within_s"]) < int(p.get("journey_window_s") or 0):
        # positivity: moves of the journeys' first days only (a float: the narration writes it in days)
        ev["entered_within_s"] = float(block["entered_within_s"])
    return ev


def either(names: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def loss_ranks(view: SnapView) -> dict[str, int]:
    """State → its rank by share of all lost journeys (1 = most lost journeys leave right after it)."""
    if uses_estimates(view):  # estimated lost journeys leaving from each state (IPCW mass)
        per: dict[str, float] = {s: float(e["exit_weight"]) for s, e in view.payload["loss_estimates"]["states"].items()}
    else:
        losses = loss_outcomes(view)
        per = {s: sum(view.count(s, o) for o in losses) for s in view.states}
    order = sorted((-n, s) for s, n in per.items() if n > 0)
    return {s: i + 1 for i, (_, s) in enumerate(order)}


@register
class Dropoff:
    """States after which journeys are lost far more often than elsewhere, and where most losses happen.

    A loss is any outcome other than the conversion (an explicit failure event
    such as declined/cancelled/lost, or inactivity). With reach ≥ min_reach and
    ≥ min_n moves out, a state qualifies when its moves end in a loss more often
    than every other state's moves (two-proportion z > 0) and either its per-move
    exit rate is ≥ min_exit and beats the others' by ≥ min_excess, or it is the
    last state of ≥ min_loss_share of all lost journeys (a much revisited screen
    can hold most losses at a low per-move rate). States qualifying by exit rate
    and linked by a transition with P ≥ link merge into one dropoff_cluster
    (subject path:a>b, ordered along the flow) tested on the pooled moves; the
    rest become dropoff_point findings. Evidence carries both measures and the
    state's rank by share of losses. States that are part of an outcome
    (detectors.leakage) are left out.

    Once a scope has censored journeys (open at the data end, or within a
    window of it) the same quantities come from its in-progress estimates
    (engine.loss_estimates: IPCW resolved moves, every journey counted): the
    exit rate tested by a Wald z with the journey-clustered variance floored at
    the binomial one at each side's effective n, min_n on the effective moves,
    reach from `reach_estimates`, links from `resolved_shares`, ranks by
    estimated lost journeys; the evidence names the estimator and carries n_eff,
    standard errors and the raw counts. With nothing censored the counts above
    are used unchanged. Open (immature) periods are still left out, as for every
    single-snapshot detector (Context.of_scope): a finding there would make every
    other detector's findings look "missing" from the latest period (engine.feed's
    recency).
    """

    name = "dropoff"
    version = 2
    config = DropoffConfig
    requires = ("outcome_parts",)
    family = "structure"  # BH family: one snapshot's own structure
    types = ("dropoff_point", "dropoff_cluster")

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: DropoffConfig = ctx.config
        if uses_estimates(view) and not view.payload["loss_estimates"]["moves"]:
            log.info("dropoff: snapshot %s: %s", view.snapshot_id, NOT_YET)  # positivity: no move resolvable yet
            return []
        flow = _flow(view)
        points: list[_Exit] = []
        parts = ctx.shared("outcome_parts", view)
        for state in flow.states:
            out = flow.moves(state)
            if out < ctx.floor(cfg.min_n) or flow.reach(state) < cfg.min_reach or state in parts:
                continue
            ev = loss_evidence(view, [state])
            excess = ev["exit_probability"] - ev["baseline_exit"]
            by_rate = ev["exit_probability"] >= cfg.min_exit and excess >= cfg.min_excess
            if ev["z"] > 0 and (by_rate or ev["loss_share"] >= cfg.min_loss_share):
                points.append(_Exit(state, ev["exits"], ev["n"], ev["z"], ev["p_value"], by_rate))
            else:
                ctx.record(f"exit:{view.snapshot_id}:{state}", ev["p_value"])
        by_state = {e.state: e for e in points}
        clusters = _clusters(flow, [e.state for e in points if e.by_rate], cfg.link)
        singles = [[e.state] for e in points if not e.by_rate]
        ranks = loss_ranks(view)
        found = []
        for members in sorted(clusters + singles):
            if len(members) > 1:
                for s in members:
                    ctx.record(f"exit:{view.snapshot_id}:{s}", by_state[s].p)
            found.append(self._finding(ctx, view, members, ranks))
        return found

    def _finding(self, ctx: Context, view: SnapView, states: list[str], ranks: dict[str, int]) -> Finding:
        ev = loss_evidence(view, states)
        n, p = ev.pop("n"), ev.pop("p_value")
        ev.pop("z")
        ev["loss_rank"] = min(ranks.get(s, len(ranks) + 1) for s in states)
        cluster = len(states) > 1
        if cluster:
            ev["states"] = states
        return ctx.finding(view, type="dropoff_cluster" if cluster else "dropoff_point",
                           subject=path_id(states) if cluster else f"state:{states[0]}",
                           predicate="is_dropoff_point_for", object=f"journey:{view.journey}", n=n,
                           effect=ev["exit_probability"] - ev["baseline_exit"], p_value=p, evidence=ev,
                           reach=ev["reach"], actionable=True)


@dataclass(frozen=True)
class _Flow:
    """What qualifying and clustering read of a scope: its states (on the estimates: those with a resolved move
    out, though no journey may have completed yet), moves out of a state (effective n on the estimates), its
    reach, and P(a → b) (the in-progress `resolved_shares` on the estimates)."""

    states: list[str]
    moves: Callable[[str], float]
    reach: Callable[[str], float]
    share: Callable[[str, str], float]


def _flow(view: SnapView) -> _Flow:
    if not uses_estimates(view):
        return _Flow(view.states, view.out_total, view.reach,
                     lambda a, b: view.count(a, b) / max(1, view.out_total(a)))
    p = view.payload
    block, reach = p["loss_estimates"], p["reach_estimates"]
    shares = {(r["from"], r["to"]): float(r["share"]) for r in p["resolved_shares"]}
    return _Flow(sorted(block["states"]), lambda s: loss_estimates.loss_test(block, [s]).n_eff,
                 lambda s: float((reach.get(s) or {}).get("estimate") or 0.0),
                 lambda a, b: shares.get((a, b), 0.0))


def _clusters(flow: _Flow, states: list[str], link: float) -> list[list[str]]:
    """Connected groups of drop-off states joined by strong transitions, each ordered along the flow."""
    adj: dict[str, set[str]] = {s: set() for s in states}
    for a in sorted(states):
        for b in sorted(states):
            if a != b and flow.share(a, b) >= link:
                adj[a].add(b)
                adj[b].add(a)
    seen: set[str] = set()
    groups = []
    for s in sorted(states):
        if s in seen:
            continue
        stack, group = [s], []
        while stack:
            cur = stack.pop()
            if cur in seen:
                continue
            seen.add(cur)
            group.append(cur)
            stack.extend(sorted(adj[cur] - seen))
        groups.append(_flow_order(flow, group, link))
    return groups


def _flow_order(flow: _Flow, group: list[str], link: float) -> list[str]:
    """Order a cluster along its strong edges: states with fewer strong in-edges first (stable by name)."""
    members = set(group)
    indeg = {s: sum(1 for a in members if a != s and flow.share(a, s) >= link) for s in group}
    return sorted(group, key=lambda s: (indeg[s], -flow.reach(s), s))
