"""What a detector sees: one journey's snapshots, its thresholds, and a test ledger.

Detectors build their findings with `ctx.finding(...)` carrying the raw
p-value; the runner later fills q-values and confidence after one
Benjamini-Hochberg pass over the whole family. Tests a detector performs but
does not turn into a finding are logged with `ctx.record(...)`, so they count
in BH too (every test performed counts, emitted or not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.shared import SHARED
from detectors.stats import r6
from detectors.view import SnapView
from ontology.model import Finding


@dataclass
class SharedCache:
    """(computation name, snapshot id) → value, shared by every detector of one run."""

    values: dict[tuple[str, str], Any] = field(default_factory=dict)

    def get(self, name: str, view: SnapView) -> Any:
        key = (name, view.snapshot_id)
        if key not in self.values:
            self.values[key] = SHARED[name](view)
        return self.values[key]


@dataclass
class Context:
    journey: str
    views: Sequence[SnapView]            # mature snapshots of this journey, and the immature release and period
                                         # ones comparisons decide early (regression), in a fixed order
    config: Any                          # the detector's frozen config
    detector: str                        # name@version
    releases: Sequence[Any] = ()         # engine.config.Release (name, at), sorted by time
    min_group_size: int = 20
    cache: SharedCache = field(default_factory=SharedCache)
    extra_tests: list[tuple[str, float]] = field(default_factory=list)  # (label, p)

    def shared(self, name: str, view: SnapView) -> Any:
        return self.cache.get(name, view)

    def of_scope(self, *scopes: str) -> list[SnapView]:
        """The views of these scopes; an immature period only reaches comparisons (through `views`)."""
        return [v for v in self.views if v.scope in scopes and (v.mature or v.scope != "period")]

    @property
    def all_view(self) -> SnapView | None:
        found = self.of_scope("all")
        return found[0] if found else None

    def per_view(self, one: Callable[[Context, SnapView], list[Finding]]) -> list[Finding]:
        """Findings of a per-snapshot detector body over the views in its configured scopes, in view order."""
        return [f for view in self.of_scope(*self.config.scopes) for f in one(self, view)]

    def floor(self, n: int) -> int:
        """A detector's sample floor never goes below privacy.min_group_size."""
        return max(int(n), int(self.min_group_size))

    def record(self, label: str, p_value: float) -> None:
        """Log a test that was performed but produced no finding (still counts in BH)."""
        self.extra_tests.append((label, float(p_value)))

    def finding(self, view: SnapView, *, type: str, subject: str, predicate: str, object: str,
                n: int, effect: float, p_value: float, evidence: Mapping[str, Any], reach: float,
                actionable: bool = True, segment: str | None = None, release: str | None = None) -> Finding:
        """A finding with a provisional q (= p) and confidence; the runner finalises both."""
        ev = {"journey": self.journey, "n": int(n), "p_value": r6(p_value), "q_value": r6(p_value)}
        ev.update({k: _clean(v) for k, v in evidence.items()})
        return Finding(
            type=type, detector=self.detector, journey=self.journey, subject=subject,
            predicate=predicate, object=object, snapshot_id=view.snapshot_id, n=int(n),
            effect=r6(effect), p_value=float(p_value), q_value=float(p_value), confidence=0.0,
            confidence_label="Low", evidence=ev, window=view.window, reach=r6(min(1.0, max(0.0, reach))),
            actionable=bool(actionable), segment=segment, release=release,
        )


def _clean(value: Any) -> Any:
    """Evidence numbers: ints stay ints, floats rounded to 6 decimals, recursively."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return r6(value)
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if hasattr(value, "item"):  # numpy scalar
        return _clean(value.item())
    return value
