"""Shared computations: nodes of the detector DAG computed once per snapshot and cached.

A detector names what it needs in `requires`; the runner's context computes
each (name, snapshot) pair at most once, whichever detector asks first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from detectors import state_tests
from detectors.leakage import outcome_parts as _outcome_parts
from detectors.stats import proportion_test
from detectors.view import SnapView

SHARED: dict[str, Callable[[SnapView], Any]] = {}


def computation(name: str) -> Callable[[Callable[[SnapView], Any]], Callable[[SnapView], Any]]:
    def deco(fn: Callable[[SnapView], Any]) -> Callable[[SnapView], Any]:
        if name in SHARED:
            raise ValueError(f"shared computation {name!r} is already defined")
        SHARED[name] = fn
        return fn
    return deco


@dataclass(frozen=True)
class ReachTest:
    """Conversion among journeys that reached a state vs those that did not (one 2×2 table).

    From the in-progress estimates (detectors.state_tests) the sizes are effective ones, the conversion
    counts are the raw ones among journeys whose end is known, and `rates` holds the two estimated
    conversion rates; `extra` their evidence."""

    state: str
    n_reached: int
    n_not_reached: int
    conv_reached: int
    conv_not_reached: int
    z: float
    p_value: float
    test: str
    rates: tuple[float, float] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def p_given_reached(self) -> float:
        if self.rates is not None:
            return self.rates[0]
        return self.conv_reached / self.n_reached if self.n_reached else 0.0

    @property
    def p_given_not_reached(self) -> float:
        if self.rates is not None:
            return self.rates[1]
        return self.conv_not_reached / self.n_not_reached if self.n_not_reached else 0.0

    @property
    def n(self) -> int:
        """Journeys behind the table (effective from the estimates; the completed journeys otherwise)."""
        return self.n_reached + self.n_not_reached

    @property
    def lift(self) -> float | None:
        """None when P(conv | not reached) = 0: the state is necessary, lift undefined."""
        if self.p_given_not_reached == 0.0:
            return None
        return self.p_given_reached / self.p_given_not_reached


@computation("reach_tests")
def reach_tests(view: SnapView) -> dict[str, ReachTest]:
    """Per transient state (start excluded: everyone reaches it), the reached/not-reached test; from the
    in-progress estimates once the scope has censored journeys (none where they are not estimable yet)."""
    out: dict[str, ReachTest] = {}
    found = state_tests.block(view)
    if found is not None:
        if not state_tests.estimable(view, found):
            return out
        tests = ((s, estimated_reach_test(found, s)) for s in sorted(found["states"]) if s != view.start)
        return {s: t for s, t in tests if t is not None}
    for state in view.states:
        n_r = view.reach_count(state)
        if state == view.start or n_r <= 0 or view.completed - n_r <= 0:
            continue
        out[state] = reach_test(view, state)
    return out


def reach_test(view: SnapView, state: str) -> ReachTest:
    """One state's reached/not-reached conversion 2×2, tested.

    Public so narrator.recompute applies the very same formula to a view over
    counts it rebuilt from the journey tables."""
    found = state_tests.block(view)
    if found is not None:
        t = estimated_reach_test(found, state) if "note" not in found else None
        if t is None:
            raise ValueError(f"no in-progress 2x2 for state {state} in snapshot {view.snapshot_id}")
        return t
    n_r = view.reach_count(state)
    x_r = view.reach_outcome(state, view.conversion)
    x_nr = view.outcome_count(view.conversion) - x_r
    z, p, test = proportion_test(x_r, n_r, x_nr, view.completed - n_r)
    return ReachTest(state, n_r, view.completed - n_r, x_r, x_nr, z, p, test)


def estimated_reach_test(found: Mapping[str, Any], state: str) -> ReachTest | None:
    """The 2×2 from a scope's `state_estimates` (detectors.state_tests), None when a side has no journey."""
    r = state_tests.reach_numbers(found, state)
    if r is None:
        return None
    return ReachTest(state, r["n_reached"], r["n_not_reached"], r["converted"][0], r["converted"][1], r["z"],
                     r["p_value"], state_tests.TEST, rates=(r["p_reached"], r["p_not_reached"]), extra=r["extra"])


def reach_of(view: SnapView, t: ReachTest) -> float:
    """Share of journeys reaching the state: the estimate behind `t`, else the completed journeys' share."""
    return float(t.extra["reach"]) if "reach" in t.extra else view.reach(t.state)


def baseline(view: SnapView) -> float:
    """P(conversion): the scope's estimate once it has censored journeys, else the completed journeys' share."""
    found = state_tests.block(view)
    if found is not None and "p_convert" in found:
        return float(found["p_convert"])
    return view.outcome_count(view.conversion) / view.completed


@computation("removal_effects")
def removal_effects(view: SnapView) -> dict[str, tuple[float, float]]:
    """state → (absolute renormalised removal effect, classic relative one) on P(conversion)."""
    return dict(view.snap.metrics.removal_effects(view.conversion))


@computation("metrics")
def metrics(view: SnapView) -> Any:
    return view.snap.metrics


@computation("outcome_parts")
def outcome_parts(view: SnapView) -> dict[str, str]:
    """State → the outcome it is part of (detectors.leakage): never a driver, necessary step or drop-off point."""
    return _outcome_parts(view)
