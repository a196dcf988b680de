"""The ranked feed: repeated findings merged into one entry, scored, best first.

A finding key is (type, journey, subject, predicate, object, segment,
release). The same key found in several snapshots is one entry that says
since when it holds (`since`: the earliest window start among the period
snapshots holding it) and in how many (`seen`, which drives novelty). The
representative finding is the one over the widest window — the all-data
snapshot's when present, else the latest period's. Ties in score break on
the key and then the finding id, so the order is fully deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from engine.scoring import score_finding
from ontology.model import Finding, content_id

ScoreWeights = Mapping[str, float]


@dataclass(frozen=True)
class FeedEntry:
    rank: int
    score: float
    finding: Finding                 # the representative
    components: Mapping[str, float]
    since: str
    seen: int
    snapshot_ids: tuple[str, ...]    # every snapshot holding the key, oldest window first

    @property
    def key(self) -> tuple[str, ...]:
        return finding_key(self.finding)


def finding_key(f: Finding) -> tuple[str, ...]:
    return (f.type, f.journey, f.subject, f.predicate, f.object, f.segment or "", f.release or "")


def rank(findings: Iterable[Finding], cfg: Any) -> list[FeedEntry]:
    """Merge, score and order findings; `cfg` is a Config (its weight_map) or a weights mapping."""
    weights = cfg.weight_map if hasattr(cfg, "weight_map") else dict(cfg)
    groups: dict[tuple[str, ...], list[Finding]] = {}
    for f in findings:
        groups.setdefault(finding_key(f), []).append(f)
    scored = []
    for key, group in groups.items():
        rep, since, seen, ids = _merge(group)
        score, parts = score_finding(rep, seen, weights)
        scored.append((round(score, 6), key, rep, parts, since, seen, ids))
    scored.sort(key=lambda t: (-t[0], t[1], t[2].finding_id))
    return [FeedEntry(i + 1, s, rep, parts, since, seen, ids)
            for i, (s, _, rep, parts, since, seen, ids) in enumerate(scored)]


def _merge(group: Sequence[Finding]) -> tuple[Finding, str, int, tuple[str, ...]]:
    ordered = sorted(group, key=lambda f: (f.window[0], f.window[1], f.snapshot_id, f.finding_id))
    rep = max(ordered, key=lambda f: (_span(f), f.window[1], f.snapshot_id, f.finding_id))
    periods = [f for f in ordered if _span(f) < _span(rep)] or [rep]
    if len({_span(f) for f in ordered}) == 1:
        periods = ordered
    seen = len({f.snapshot_id for f in periods})
    since = min(f.window[0] for f in periods)
    ids = tuple(dict.fromkeys(f.snapshot_id for f in ordered))
    return rep, since, seen, ids


def _span(f: Finding) -> float:
    return (_ts(f.window[1]) - _ts(f.window[0])).total_seconds()


def _ts(text: str) -> datetime:
    parsed = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


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
        "since": entry.since, "seen": entry.seen, "n": f.n, "effect": f.effect, "reach": f.reach,
        "components": {k: round(v, 6) for k, v in entry.components.items()},
        "snapshot_ids": list(entry.snapshot_ids),
    }
