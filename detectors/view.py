"""Read-only count helpers over one snapshot's payload.

Detectors read the empirical counts straight from the payload (the contract
in docs/contracts.md) and the chain quantities (N, B, removal effects) from
`snap.metrics`; this keeps every count a detector cites identical to the
number stored in the snapshot, so a fact recomputes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Mapping


@dataclass(frozen=True)
class SnapView:
    snap: Any  # engine.snapshot.Snapshot (anything with .payload and .metrics)
    payload: Mapping[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", self.snap.payload)

    @property
    def snapshot_id(self) -> str:
        return str(self.payload["snapshot_id"])

    @property
    def journey(self) -> str:
        return str(self.payload["journey"])

    @property
    def scope(self) -> str:
        return str(self.payload["scope"])

    @property
    def window(self) -> tuple[str, str]:
        w = self.payload["window"]
        return str(w["start"]), str(w["end"])

    @property
    def segment(self) -> tuple[str, str] | None:
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
        return int(self.payload.get("completed", 0))

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

    def outcome_count(self, outcome: str) -> int:
        return int(self.payload.get("outcome_counts", {}).get(outcome, 0))

    @cached_property
    def counts(self) -> dict[tuple[str, str], int]:
        return {(t["from"], t["to"]): int(t["count"]) for t in self.payload.get("transitions", [])}

    @cached_property
    def out_totals(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for (src, _), c in self.counts.items():
            totals[src] = totals.get(src, 0) + c
        return totals

    def count(self, src: str, dst: str) -> int:
        return self.counts.get((src, dst), 0)

    def out_total(self, src: str) -> int:
        return self.out_totals.get(src, 0)

    def reach_count(self, state: str) -> int:
        return int(self.payload.get("reach_counts", {}).get(state, 0))

    def reach(self, state: str) -> float:
        return self.reach_count(state) / self.completed if self.completed else 0.0

    def reach_outcome(self, state: str, outcome: str) -> int:
        return int(self.payload.get("reach_outcome_counts", {}).get(state, {}).get(outcome, 0))

    def visit_count(self, state: str) -> int:
        return int(self.payload.get("visit_counts", {}).get(state, 0))

    def repeat_count(self, state: str) -> int:
        return int(self.payload.get("repeat_counts", {}).get(state, 0))

    def repeat_outcome(self, state: str, outcome: str) -> int:
        return int(self.payload.get("repeat_outcome_counts", {}).get(state, {}).get(outcome, 0))
