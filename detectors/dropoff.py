"""Drop-off points and clusters (paper 6.2.2)."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.context import Context
from detectors.defaults import DropoffConfig
from detectors.registry import register
from detectors.stats import two_proportion_z
from detectors.view import SnapView
from ontology.model import Finding
from ontology.names import path_id


@dataclass(frozen=True)
class _Exit:
    state: str
    exits: int
    out: int
    z: float
    p: float


@register
class Dropoff:
    """States where journeys end without converting far more often than elsewhere.

    A state qualifies with P(state → drop-off) ≥ min_exit, reach ≥ min_reach and
    ≥ min_n transitions out. Its exits are tested against the journey's baseline
    exit rate over all other states' transitions (two-proportion z). Qualifying
    states linked by a transition with P ≥ link are merged into one
    dropoff_cluster (subject path:a>b, ordered along the flow) tested on the
    pooled exits; lone ones become dropoff_point findings.
    """

    name = "dropoff"
    version = 1
    config = DropoffConfig
    requires = ()
    family = "structure"  # BH family: one snapshot's own structure
    types = ("dropoff_point", "dropoff_cluster")

    def run(self, ctx: Context) -> list[Finding]:
        return ctx.per_view(self._one)

    def _one(self, ctx: Context, view: SnapView) -> list[Finding]:
        cfg: DropoffConfig = ctx.config
        total_exit = sum(view.count(s, view.dropoff) for s in view.states)
        total_out = sum(view.out_total(s) for s in view.states)
        points: list[_Exit] = []
        for state in view.states:
            out = view.out_total(state)
            if out < ctx.floor(cfg.min_n) or view.reach(state) < cfg.min_reach:
                continue
            exits = view.count(state, view.dropoff)
            z, p = two_proportion_z(exits, out, total_exit - exits, total_out - out)
            rest_rate = (total_exit - exits) / max(1, total_out - out)
            if exits / out >= cfg.min_exit and exits / out - rest_rate >= cfg.min_excess and z > 0:
                points.append(_Exit(state, exits, out, z, p))
            else:
                ctx.record(f"exit:{view.snapshot_id}:{state}", p)
        clusters = _clusters(view, [e.state for e in points], cfg.link)
        by_state = {e.state: e for e in points}
        found = []
        for members in clusters:
            if len(members) == 1:
                found.append(self._point(ctx, view, by_state[members[0]]))
                continue
            for s in members:
                ctx.record(f"exit:{view.snapshot_id}:{s}", by_state[s].p)
            found.append(self._cluster(ctx, view, [by_state[s] for s in members], total_exit, total_out))
        return found

    def _point(self, ctx: Context, view: SnapView, e: _Exit) -> Finding:
        rate = e.exits / e.out
        baseline = _baseline(view, e.exits, e.out)
        evidence = {"exit_probability": rate, "reach": view.reach(e.state), "n_reached": view.reach_count(e.state),
                    "dropoff_outcome": view.dropoff, "baseline_exit": baseline, "exits": e.exits}
        return ctx.finding(view, type="dropoff_point", subject=f"state:{e.state}", predicate="is_dropoff_point_for",
                           object=f"journey:{view.journey}", n=e.out, effect=rate - baseline, p_value=e.p,
                           evidence=evidence, reach=view.reach(e.state), actionable=True)

    def _cluster(self, ctx: Context, view: SnapView, members: list[_Exit], total_exit: int, total_out: int) -> Finding:
        exits = sum(e.exits for e in members)
        out = sum(e.out for e in members)
        z, p = two_proportion_z(exits, out, total_exit - exits, total_out - out)
        rate = exits / out
        baseline = _baseline(view, exits, out)
        reach = max(view.reach(e.state) for e in members)
        states = [e.state for e in members]
        evidence = {"exit_probability": rate, "reach": reach,
                    "n_reached": max(view.reach_count(s) for s in states), "dropoff_outcome": view.dropoff,
                    "states": states, "baseline_exit": baseline, "exits": exits}
        return ctx.finding(view, type="dropoff_cluster", subject=path_id(states),
                           predicate="is_dropoff_point_for", object=f"journey:{view.journey}", n=out,
                           effect=rate - baseline, p_value=p, evidence=evidence, reach=reach, actionable=True)


def _baseline(view: SnapView, exits: int, out: int) -> float:
    """Exit rate over every other state's transitions."""
    total_exit = sum(view.count(s, view.dropoff) for s in view.states)
    total_out = sum(view.out_total(s) for s in view.states)
    return (total_exit - exits) / max(1, total_out - out)


def _clusters(view: SnapView, states: list[str], link: float) -> list[list[str]]:
    """Connected groups of drop-off states joined by strong transitions, each ordered along the flow."""
    chosen = set(states)
    adj: dict[str, set[str]] = {s: set() for s in states}
    for (a, b), c in sorted(view.counts.items()):
        if a in chosen and b in chosen and a != b and c / max(1, view.out_total(a)) >= link:
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
        groups.append(_flow_order(view, group, link))
    return groups


def _flow_order(view: SnapView, group: list[str], link: float) -> list[str]:
    """Order a cluster along its strong edges: states with fewer strong in-edges first (stable by name)."""
    members = set(group)
    indeg = {s: sum(1 for a in members if a != s and view.count(a, s) / max(1, view.out_total(a)) >= link)
             for s in group}
    return sorted(group, key=lambda s: (indeg[s], -view.reach(s), s))
