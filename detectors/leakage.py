"""States that are part of an outcome rather than a step towards it (outcome leakage).

Some logs write a state at the same instant as the outcome event, or always a
few seconds before it (BPI 2012: A_REGISTERED, A_ACTIVATED and O_ACCEPTED come
with A_APPROVED). Such a state "converts" 100 % of the time because it *is*
the conversion, so calling it a driver, a necessary step or a drop-off point
says nothing. The snapshot counts (engine.outcome_adjacent), per (state, outcome), the journeys whose
last visit to the state falls within `outcome_adjacent.within_s` seconds
before their outcome event (explicit outcomes only; an inactivity drop-off has
no event). A state is part of an outcome when that holds in at least
`share` (default 95 %) of the journeys that reach it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from detectors.view import SnapView

PART_SHARE = 0.95  # share of a state's journeys in which it sits at the outcome event


def outcome_parts(view: SnapView, share: float = PART_SHARE) -> dict[str, str]:
    """State → the outcome it is part of, for this snapshot's counts (sorted by state)."""
    counts: Mapping[str, Mapping[str, int]] = (view.payload.get("outcome_adjacent") or {}).get("counts") or {}
    parts = {}
    for state, by_outcome in sorted(counts.items()):
        reached = view.reach_count(state)
        if reached <= 0 or state == view.start:
            continue
        outcome, n = max(sorted(by_outcome.items()), key=lambda kv: kv[1])
        if n >= share * reached:
            parts[state] = outcome
    return parts


def run_summary(snapshots: Iterable[Any]) -> list[str]:
    """One sentence per journey whose all-data snapshot has states treated as part of an outcome.

    For the run summary: each all-data snapshot (payload with scope "all") is read once; journeys
    without such states give no line. Deterministic (sorted by tenant, journey, outcome).
    """
    lines = []
    for snap in snapshots:
        view = SnapView(snap)
        if view.scope != "all":
            continue
        parts = outcome_parts(view)
        within = (view.payload.get("outcome_adjacent") or {}).get("within_s")
        by_outcome: dict[str, list[str]] = {}
        for state, outcome in parts.items():
            by_outcome.setdefault(outcome, []).append(state)
        tenant = str(view.payload.get("tenant_id") or "")
        for outcome, states in sorted(by_outcome.items()):
            names = ", ".join(f'"{s}"' for s in states)
            text = (f'{view.journey}: {names} treated as part of "{outcome}" (logged within {within} s '
                    f'before it in at least {PART_SHARE:.0%} of the journeys reaching them), '
                    f'so never reported as a driver, a necessary step or a drop-off point.')
            lines.append((tenant, view.journey, outcome, text))
    return [line for *_, line in sorted(lines)]
