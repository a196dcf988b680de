"""The one typed reader of a snapshot payload (docs/contracts.md), shared by engine, detectors and narrator.

`engine.snapshot.Snapshot` (a stored snapshot), `detectors.view.SnapView` (a detector's view of one) and
`narrator.recompute.Recount` (counts recomputed from the derived events) all read through these
accessors, so a count, a default or a rate means the same thing everywhere: every rate a detector cites
is the number stored in the snapshot, and a fact recomputes exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

from engine.markov import ChainMetrics


class SnapshotReader:
    """Accessors over `self.payload`; subclasses provide `payload` and `metrics` (the chain it implies)."""

    payload: Mapping[str, Any]

    @property
    def metrics(self) -> ChainMetrics:
        raise NotImplementedError

    # --- what the snapshot is --------------------------------------------------------------
    @property
    def snapshot_id(self) -> str:
        return str(self.payload["snapshot_id"])

    @property
    def tenant_id(self) -> str:
        return str(self.payload.get("tenant_id") or "")

    @property
    def journey(self) -> str:
        return str(self.payload["journey"])

    @property
    def scope(self) -> str:
        return str(self.payload.get("scope", "all"))

    @property
    def window(self) -> tuple[str, str]:
        w = self.payload["window"]
        return str(w["start"]), str(w["end"])

    @property
    def segment(self) -> tuple[str, str] | None:
        """(key, value) of a segment scope, else None."""
        seg = self.payload.get("segment")
        return (str(seg["key"]), str(seg["value"])) if seg else None

    @property
    def release(self) -> str | None:
        rel = self.payload.get("release")
        return str(rel) if rel else None

    @property
    def mature(self) -> bool:
        return bool(self.payload.get("mature", True))

    @property
    def completed(self) -> int:
        """Completed (non-censored) journeys: the denominator of every completed-only rate."""
        return int(self.payload.get("completed", sum(self._map("outcome_counts").values())))

    @property
    def actors(self) -> int:
        return int(self.payload.get("actors") or self.completed)

    @property
    def states(self) -> list[str]:
        return list(self.payload["states"])

    @property
    def start(self) -> str:
        return str(self.payload["start_state"])

    @property
    def conversion(self) -> str:
        return str(self.payload["conversion_outcome"])

    @property
    def dropoff(self) -> str:
        return str(self.payload["dropoff_outcome"])

    @property
    def outcomes(self) -> list[str]:
        """Every outcome of the journey (the conversion, explicit failures, the drop-off one), sorted."""
        named = set(self.payload.get("outcomes") or []) | set(self.payload.get("outcome_counts") or {})
        return sorted(named | {self.conversion, self.dropoff})

    # --- counts ------------------------------------------------------------------------------
    def _map(self, key: str) -> Mapping[str, Any]:
        return self.payload.get(key) or {}

    def outcome_count(self, outcome: str) -> int:
        return int(self._map("outcome_counts").get(outcome, 0))

    @cached_property
    def counts(self) -> dict[tuple[str, str], int]:
        """(from, to) -> completed journeys' moves."""
        return {(t["from"], t["to"]): int(t["count"]) for t in self.payload.get("transitions", [])}

    @cached_property
    def out_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (src, _), c in self.counts.items():
            totals[src] = totals.get(src, 0) + c
        return totals

    def count(self, src: str, dst: str) -> int:
        return self.counts.get((src, dst), 0)

    transition_count = count

    def out_total(self, src: str) -> int:
        return self.out_totals.get(src, 0)

    def reach_count(self, state: str) -> int:
        return int(self._map("reach_counts").get(state, 0))

    def reach_outcome(self, state: str, outcome: str) -> int:
        return int(self._map("reach_outcome_counts").get(state, {}).get(outcome, 0))

    def visit_count(self, state: str) -> int:
        return int(self._map("visit_counts").get(state, 0))

    def repeat_count(self, state: str) -> int:
        return int(self._map("repeat_counts").get(state, 0))

    def repeat_outcome(self, state: str, outcome: str) -> int:
        return int(self._map("repeat_outcome_counts").get(state, {}).get(outcome, 0))

    # --- rates ---------------------------------------------------------------------------------
    def reach(self, state: str) -> float:
        """Share of completed journeys that visit `state` at least once (0 with no journeys)."""
        done = self.completed
        return self.reach_count(state) / done if done else 0.0

    def p_outcome_given_reached(self, state: str, outcome: str) -> float | None:
        reached = self.reach_count(state)
        return self.reach_outcome(state, outcome) / reached if reached else None

    def p_outcome_given_not_reached(self, state: str, outcome: str) -> float | None:
        not_reached = self.completed - self.reach_count(state)
        if not not_reached:
            return None
        return (self.outcome_count(outcome) - self.reach_outcome(state, outcome)) / not_reached

    def lift(self, state: str, outcome: str) -> float | None:
        """P(o | reached) / P(o | not reached); None when the denominator is 0 or undefined."""
        reached = self.p_outcome_given_reached(state, outcome)
        other = self.p_outcome_given_not_reached(state, outcome)
        if reached is None or not other:
            return None
        return reached / other

    def visits_mean(self, state: str) -> float | None:
        """Mean visits among completed journeys that visit `state`."""
        reached = self.reach_count(state)
        return self.visit_count(state) / reached if reached else None
