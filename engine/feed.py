"""The ranked feed: one entry per fact, scored by what is at stake, best first.

A finding key is (type, journey, subject, predicate, object, segment,
release). The same key found in several snapshots is one entry. Its
representative is the finding resting on the most data (largest n; then the
all-data scope, the widest window, the latest end), so a short period slice
never replaces the all-data finding. `seen` is how many period snapshots hold
the key and `periods` how many period snapshots of the journey produced any
finding; `since` is the earliest window start among the period snapshots
holding it (the representative's own start when no period holds it).
`persistence` says all of that in a sentence.

Each entry has a status against the previous run's feed (engine/lifecycle.py):
new, persisting, or resolved (an adverse release regression that a later
release undid; resolved entries follow the open ones).

Restatements of one fact are merged too: segment findings that say "these
states are more (or less) common in segment k=v" for one segment value and
direction are one fact about the segment, and drivers or necessary steps of one
snapshot reached by exactly the same journeys are one fact about those journeys
(unless their stakes point different ways); the entry keeps the finding with
the strongest evidence (highest score) and lists the others in `also`.

Ranking: the feed's `score` is what is at stake discounted by how likely it is
to hold up: the share of the journey's conversions at stake, or for a drop-off
the share of its lost journeys (each against its own total, uncapped,
detectors/stake.py and engine/scoring.py) × the finding's confidence (calibrated to replication,
detectors/confidence.py) × recency (1 while it still holds; a persisting
finding keeps its rank). The paper's composite (engine/scoring.py, configured
by scoring.weights, magnitude from the stake) is kept in
`components["composite"]` and orders findings with equal score, including
those with no stake estimate, which come last. Remaining ties break on the key
and then the finding id, so the order is fully deterministic.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.lifecycle import finding_key, resolutions, status
from engine.scoring import score_finding
from ontology.model import Finding, content_id

ScoreWeights = Mapping[str, float]
RESTATED = ("more_common_in", "less_common_in")  # segment predicates whose findings restate one fact per segment value
REACH_FACTS = ("activation_driver", "necessary_for_conversion")  # restate one fact when reached by the same journeys


@dataclass(frozen=True)
class FeedEntry:
    rank: int
    score: float
    finding: Finding                 # the representative
    components: Mapping[str, float]
    since: str
    seen: int
    snapshot_ids: tuple[str, ...]    # every snapshot holding the key, oldest window first
    periods: int = 0                 # period snapshots of the journey with any finding
    also: tuple[Finding, ...] = ()   # restatements of the same fact merged into this entry
    status: str = "new"              # new | persisting | resolved (engine/lifecycle.py)
    resolution: Mapping[str, Any] | None = None  # what closed a resolved regression

    @property
    def key(self) -> tuple[str, ...]:
        return finding_key(self.finding)

    @property
    def persistence(self) -> str:
        return persistence_text(self.seen, self.periods, self.since)


def persistence_text(seen: int, periods: int, since: str) -> str:
    """What `seen` and `since` mean, in one sentence a reader can check."""
    day = str(since)[:10]
    if periods == 0:
        return f"Found on all the data (from {day}); no period snapshot was compared."
    if seen == 0:
        return (f"Found on all the data (from {day}); none of the {periods} period snapshots reports it "
                "(some detectors look at all the data only).")
    return (f"Holds in {seen} of {periods} period snapshots, the first starting {day} "
            "(seen counts the period snapshots holding it).")


def rank(findings: Iterable[Finding], cfg: Any, previous: Collection[tuple[str, ...]] = ()) -> list[FeedEntry]:
    """Merge, score and order findings; `cfg` is a Config (its weight_map) or a weights mapping.

    `previous`: the finding keys of the previous run's feed (engine/lifecycle.py), for each entry's status.
    Resolved entries follow the open ones, in score order."""
    weights = cfg.weight_map if hasattr(cfg, "weight_map") else dict(cfg)
    findings = list(findings)
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        groups.setdefault(finding_key(f), []).append(f)
    timeline = _period_windows(findings)
    scored = []
    for key, group in groups.items():
        rep, since, seen, ids = _merge(group)
        windows = timeline.get(rep.journey, [])
        composite, parts = score_finding(rep, _missing_since(group, windows), weights)
        parts = {**parts, "composite": round(composite, 6)}
        scored.append((feed_score(rep, parts), key, rep, parts, since, seen, ids, len(windows)))
    closed = resolutions([row[2] for row in scored])
    scored.sort(key=lambda t: (t[1] in closed, -t[0], -t[3]["composite"], t[1], t[2].finding_id))
    kept, also = _restatements(scored)
    return [FeedEntry(i + 1, s, rep, parts, since, seen, ids, periods, tuple(also.get(key, ())),
                      status(key, previous, closed), closed.get(key))
            for i, (s, key, rep, parts, since, seen, ids, periods) in enumerate(kept)]


def feed_score(f: Finding, parts: Mapping[str, float]) -> float:
    """What is at stake, discounted by how likely it is to hold up: stake share × confidence × recency.

    Findings without a stake estimate (conversions or losses) score 0 here and follow, ordered by the composite."""
    if not isinstance(f.evidence.get("at_stake"), Mapping):
        return 0.0
    return round(parts["magnitude"] * float(f.confidence) * parts["novelty"], 6)


def _restatements(scored: list[tuple]) -> tuple[list[tuple], dict[tuple[str, ...], list[Finding]]]:
    """Keep the best-scored finding per restated fact (scored is best first); the rest go to its `also`."""
    first: dict[tuple[Any, ...], tuple[str, ...]] = {}
    also: dict[tuple[str, ...], list[Finding]] = {}
    kept = []
    for row in scored:
        key, rep = row[1], row[2]
        fact = _fact(rep)
        if fact is not None:
            if fact in first:
                also[first[fact]].append(rep)
                continue
            first[fact] = key
            also[key] = []
        kept.append(row)
    return kept, also


def _fact(f: Finding) -> tuple[Any, ...] | None:
    """What a finding restates, when several findings can state it; None when it stands alone.

    Segment findings "state X is more (less) common in segment k=v": one fact per segment value and
    direction. Drivers and necessary steps of one snapshot reached by the same journeys (equal
    n_reached and conversion among them; e.g. a step always followed by another) state one fact
    about those journeys, unless their stakes point different ways (`protect`)."""
    ev = f.evidence
    if f.type == "segment_divergence" and f.predicate in RESTATED:
        return (f.journey, f.type, f.predicate, f.object, f.release or "")
    if f.type in REACH_FACTS and "n_reached" in ev and "p_given_reached" in ev:
        stake = ev.get("at_stake")
        protect = stake.get("protect", True) if isinstance(stake, Mapping) else True
        return (f.journey, f.type, f.object, f.snapshot_id, f.segment or "", ev["n_reached"], ev["p_given_reached"], protect)
    return None


def _merge(group: Sequence[Finding]) -> tuple[Finding, str, int, tuple[str, ...]]:
    ordered = sorted(group, key=lambda f: (f.window[0], f.window[1], f.snapshot_id, f.finding_id))
    rep = max(ordered, key=lambda f: (f.n, not _is_period(f, ordered), _span(f), f.window[1], f.snapshot_id,
                                      f.finding_id))
    periods = [f for f in ordered if _is_period(f, ordered)]
    seen = len({f.snapshot_id for f in periods})
    since = min((f.window[0] for f in periods), default=rep.window[0])
    ids = tuple(dict.fromkeys(f.snapshot_id for f in ordered))
    return rep, since, seen, ids


def _is_period(f: Finding, group: Sequence[Finding]) -> bool:
    """A period snapshot's finding: by the scope the runner records, else (older findings) a narrower window."""
    scope = f.evidence.get("scope") if isinstance(f.evidence, Mapping) else None
    if scope:
        return scope == "period"
    return _span(f) < max(_span(g) for g in group)


def _period_windows(findings: Sequence[Finding]) -> dict[str, list[tuple[str, str]]]:
    """Per journey, the distinct period windows that produced any finding, oldest first."""
    out: dict[str, set[tuple[str, str]]] = {}
    for f in findings:
        if f.evidence.get("scope") == "period":
            out.setdefault(f.journey, set()).add(tuple(f.window))  # type: ignore[arg-type]
    return {j: sorted(w) for j, w in out.items()}


def _missing_since(group: Sequence[Finding], windows: Sequence[tuple[str, str]]) -> int:
    """How many of the journey's latest period snapshots lack the finding (0 when it still holds)."""
    held = [windows.index((f.window[0], f.window[1])) for f in group
            if f.evidence.get("scope") == "period" and tuple(f.window) in windows]
    if not held or not windows:
        return 0
    return len(windows) - 1 - max(held)


def _span(f: Finding) -> float:
    return (parse_ts(f.window[1]) - parse_ts(f.window[0])).total_seconds()


def parse_ts(text: str) -> datetime:
    """An ISO 8601 timestamp (Z or offset; naive taken as UTC) as an aware datetime."""
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _release_of(resolution: Mapping[str, Any] | None) -> str | None:
    return f"release:{resolution['release']}" if resolution else None


def finding_dict(f: Finding) -> dict[str, Any]:
    """The `finding` object of a feed item (DESIGN.md)."""
    return {
        "finding_id": f.finding_id, "type": f.type, "detector": f.detector, "journey": f.journey,
        "subject": f.subject, "predicate": f.predicate, "object": f.object, "segment": f.segment,
        "release": f.release, "snapshot_id": f.snapshot_id, "window": list(f.window),
        "confidence": f.confidence, "confidence_label": f.confidence_label,
        "p_value": f.p_value, "q_value": f.q_value, "n": f.n, "effect": f.effect, "reach": f.reach,
        "actionable": f.actionable, "evidence": dict(f.evidence),
    }


def feed_item(entry: FeedEntry, narrative: Mapping[str, Any] | None, fact_ids: Sequence[str] | int = ()) -> dict[str, Any]:
    """One item of `journeygraph feed --format json`, plus since, seen, n, effect, reach, components.

    `narrative` is the narrative dict, or a whole insight dict (with insight_id,
    narrative and fact_ids), whose id and cited facts are then used. An int
    in `fact_ids` is taken as a rank and ignored (the entry carries its rank).
    """
    narrative = dict(narrative or {"text": "", "backend": "template", "sentences": []})
    insight_id = None
    if "narrative" in narrative and isinstance(narrative["narrative"], Mapping):
        insight = narrative
        insight_id = insight.get("insight_id")
        fact_ids = list(insight.get("fact_ids", ())) if isinstance(fact_ids, int) or not fact_ids else fact_ids
        narrative = dict(insight["narrative"])
    fact_ids = [] if isinstance(fact_ids, int) else list(fact_ids)
    insight_id = insight_id or narrative.pop("insight_id", None) or content_id(
        "insight", {"finding_id": entry.finding.finding_id, "narrative": narrative, "fact_ids": sorted(fact_ids)})
    f = entry.finding
    return {
        "insight_id": insight_id, "rank": entry.rank, "score": entry.score,
        "finding": finding_dict(f), "narrative": narrative, "fact_ids": sorted(fact_ids),
        "since": entry.since, "seen": entry.seen, "periods": entry.periods, "persistence": entry.persistence,
        "n": f.n, "effect": f.effect, "reach": f.reach, "at_stake": f.evidence.get("at_stake"),
        "also_holds_for": [{"subject": a.subject, "finding_id": a.finding_id, "snapshot_id": a.snapshot_id}
                           for a in entry.also],
        "components": {k: round(v, 6) for k, v in entry.components.items()},
        "status": entry.status, "resolved_after": _release_of(entry.resolution), "resolution": entry.resolution,
        "snapshot_ids": list(entry.snapshot_ids),
    }
