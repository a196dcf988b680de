"""A detector's view of one snapshot: the engine's one typed reader over any snapshot-like object.

Detectors read the empirical counts straight from the payload (the contract
in docs/contracts.md) and the chain quantities (N, B, removal effects) from
`snap.metrics`; this keeps every count a detector cites identical to the
number stored in the snapshot, so a fact recomputes exactly. The accessors are
`engine.snapshot_reader.SnapshotReader`'s, shared with the engine and the narrator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.markov import ChainMetrics
from engine.snapshot_reader import SnapshotReader


class SnapView(SnapshotReader):
    """Wraps `snap` (an engine.snapshot.Snapshot, or anything with .payload and .metrics)."""

    def __init__(self, snap: Any) -> None:
        self.snap = snap
        self.payload: Mapping[str, Any] = snap.payload

    @property
    def metrics(self) -> ChainMetrics:
        return self.snap.metrics  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SnapView) and other.snap is self.snap

    def __hash__(self) -> int:
        return id(self.snap)

    def __repr__(self) -> str:
        return f"SnapView({self.snapshot_id}, {self.scope})"
