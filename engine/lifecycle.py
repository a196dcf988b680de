"""Insights that open and close: a feed item's status across the runs of one workspace (issue 14, part 4).

Each item of the feed carries `status`:

    new         its finding key (engine.feed) was not in the previous run's feed
    persisting  it was (open, as before)
    resolved    closed, for one of two reasons, said by `resolved_after`:
                - "release:<vB>": an adverse regression after release vA whose edge (or conversion
                  outcome) moved back after a later release vB to within half of the regression of
                  its baseline before vA; `resolution` holds the three probabilities and the finding
                  that shows the return (the regression detector's own finding for vB)
                - null: a finding of the previous run's feed that no run finds any more; the
                  previous item is carried into this feed once, after the open items, and the
                  data its trace reads (the previous run's layers, journeys and config) is kept
                  while it is shown (engine.carried)

`watch` delivers a resolved item once, as a notice of its own (engine/app/watch.py), even when the
open finding was delivered before. The statuses are feed metadata, not facts: nothing enters the
fact graph, so the closed vocabulary needs no new term.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ontology.model import Finding

STATUSES = ("new", "persisting", "resolved")
UNDONE = 0.5  # share of the regression that must be undone: |p_now − p_baseline| ≤ (1 − UNDONE)·|Δ|


def finding_key(f: Finding) -> tuple[str, ...]:
    return (f.type, f.journey, f.subject, f.predicate, f.object, f.segment or "", f.release or "")


def item_key(item: Mapping[str, Any]) -> tuple[str, ...]:
    """The finding key of a stored feed item (its `finding` dict)."""
    f = item["finding"]
    return (f["type"], f["journey"], f["subject"], f["predicate"], f["object"], f.get("segment") or "",
            f.get("release") or "")


def resolutions(findings: Sequence[Finding]) -> dict[tuple[str, ...], dict[str, Any]]:
    """Finding key of each adverse release regression that a later release undid → its `resolution`."""
    regs = [f for f in findings if f.type == "regression" and f.release and f.predicate == "regressed_after"]
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for a in regs:
        if not a.actionable:
            continue
        later = sorted((b for b in regs if _same_measure(a, b) and b.window[0] > a.window[0] and _undoes(a, b)),
                       key=lambda b: (b.window[0], b.release or "", b.finding_id))
        if later:
            b = later[0]
            out[finding_key(a)] = {
                "release": b.release, "p_baseline": a.evidence["p_before"], "p_regressed": a.evidence["p_after"],
                "p_now": b.evidence["p_after"], "finding_id": b.finding_id, "snapshot_id": b.snapshot_id,
            }
    return out


def _same_measure(a: Finding, b: Finding) -> bool:
    return (a.journey, a.subject, a.segment or "") == (b.journey, b.subject, b.segment or "") and a.release != b.release


def _undoes(a: Finding, b: Finding) -> bool:
    """b moves the other way and lands within (1 − UNDONE)·|Δa| of a's baseline."""
    da, db = float(a.evidence["delta"]), float(b.evidence["delta"])
    back = abs(float(b.evidence["p_after"]) - float(a.evidence["p_before"]))
    return da * db < 0 and back <= (1.0 - UNDONE) * abs(da)


def status(key: tuple[str, ...], previous: Collection[tuple[str, ...]], resolved: Mapping[tuple[str, ...], Any]) -> str:
    if key in resolved:
        return "resolved"
    return "persisting" if key in previous else "new"


def closed_items(previous: Sequence[Mapping[str, Any]], current: Collection[tuple[str, ...]]) -> list[dict[str, Any]]:
    """Items of the previous feed still open there and no longer found: carried once, as resolved."""
    out = []
    for item in previous:
        if item.get("status", "new") != "resolved" and item_key(item) not in current:
            out.append({**item, "score": 0.0, "status": "resolved", "resolved_after": None, "resolution": None})
    return out
