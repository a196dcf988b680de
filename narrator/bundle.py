"""Fact bundles: the only thing a narrator ever sees for a finding.

A bundle is the finding plus the facts one hop around it: facts whose subject or
object is one of the finding's entities, valid in the finding's window, above a
minimum confidence. The finding's own (primary) fact comes first; the rest are
ordered most relevant first (same snapshot, then facts about the finding's
subject before facts that only share its outcome or journey, then confidence,
then id) and cut at a fixed size, so the same store always
gives the same bundle, byte for byte, and the same ``bundle_hash``.

Shape (ontology/schemas/bundle.schema.json)::

    {"bundle_hash": sha256 hex of canonical_json({finding, facts, limits}),
     "finding": Finding.to_dict(), "facts": [Fact.to_dict(), ...],   # facts[0] = primary fact
     "limits": {"max_facts", "min_confidence", "hops": 1, "candidates", "dropped"}}
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jsonschema

from ontology.errors import GroundingError
from ontology.model import Fact, Finding, Provenance, canonical_json
from ontology.names import entity_states, show_name


class FactSource(Protocol):
    """The read side of ontology.store.FactStore that bundles need."""

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]: ...


@dataclass(frozen=True)
class BundleLimits:
    """How big and how strict a bundle is; part of the hash so a change is visible."""

    max_facts: int = 12
    min_confidence: float = 0.5


class ListFactSource:
    """A FactSource over an in-memory list (tests, `verify`, and callers that already hold facts)."""

    def __init__(self, facts: Iterable[Fact]) -> None:
        self._facts = sorted(facts, key=lambda f: f.fact_id)

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]:
        for fact in self._facts:
            if entity is not None and entity not in (fact.subject, fact.object):
                continue
            if predicate is not None and fact.predicate != predicate:
                continue
            if snapshot_id is not None and fact.provenance.snapshot_id != snapshot_id:
                continue
            yield fact


class RunFactSource:
    """A store's facts restricted to one run's: the store keeps every run's facts, and an older run's facts
    of the same entity state old counts (a feed narrated from them cites numbers today's data no longer
    gives, and their trace fails). Same order and form as the store's own answers."""

    def __init__(self, store: FactSource, fact_ids: Iterable[str]) -> None:
        self._store, self._ids = store, frozenset(fact_ids)

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]:
        return (f for f in self._store.facts(entity=entity, predicate=predicate, snapshot_id=snapshot_id)
                if f.fact_id in self._ids)


def finding_entities(finding: Finding) -> list[str]:
    """The finding's own entities (subject, object, segment, release), then the states inside edges and paths."""
    direct = [finding.subject, finding.object]
    if finding.segment:
        direct.append(finding.segment if ":" in finding.segment else f"segment:{finding.segment}")
    if finding.release:
        direct.append(finding.release if ":" in finding.release else f"release:{finding.release}")
    inner: list[str] = []
    for entity in (finding.subject, finding.object):
        inner.extend(f"state:{s}" for s in entity_states(entity))
    return list(dict.fromkeys(direct + inner))


def primary_fact(finding: Finding, config_hash: str = "unknown", engine_version: str = "unknown") -> Fact:
    """The fact a finding asserts, rebuilt from the finding when the store does not hold it."""
    return Fact(
        subject=finding.subject, predicate=finding.predicate, object=finding.object,
        confidence=float(finding.confidence), valid_from=finding.window[0], valid_to=finding.window[1],
        evidence=dict(finding.evidence),
        provenance=Provenance(finding.snapshot_id, finding.detector, config_hash, engine_version),
    )


def _is_primary(fact: Fact, finding: Finding) -> bool:
    return (fact.subject, fact.predicate, fact.object, fact.provenance.snapshot_id) == (
        finding.subject, finding.predicate, finding.object, finding.snapshot_id)


def _valid_in(fact: Fact, window: tuple[str, str]) -> bool:
    """Validity intervals overlap (ISO-8601 UTC strings compare in time order)."""
    return fact.valid_from <= window[1] and fact.valid_to >= window[0]


def entity_weights(finding: Finding) -> dict[str, float]:
    """How strongly touching each entity ties a fact to the finding: its subject most, a journey least."""
    weights: dict[str, float] = {}
    for entity in finding_entities(finding):
        weights[entity] = 1.0 if entity.startswith("journey:") else 2.0
    for entity in (finding.object, finding.subject):
        weights[entity] = 0.5 if entity.startswith("journey:") else 1.0 if entity == finding.object else 3.0
    return weights


def _relevance(fact: Fact, finding: Finding, weights: Mapping[str, float]) -> tuple[Any, ...]:
    score = sum(weights.get(e, 0.0) for e in {fact.subject, fact.object})
    same_snapshot = fact.provenance.snapshot_id == finding.snapshot_id
    return (-int(same_snapshot), -score, -float(fact.confidence), fact.fact_id)


CONTEXT_ONLY = frozenset({"has_outcome_rate"})  # scope-level rates answer `ask`; a finding's narrative does not cite them


def select_facts(finding: Finding, source: FactSource, limits: BundleLimits) -> tuple[Fact, list[Fact], int]:
    """Primary fact, the related facts kept (most relevant first) and how many candidates there were."""
    entities = finding_entities(finding)
    seen: dict[str, Fact] = {}
    for entity in entities:
        for fact in source.facts(entity=entity):
            seen.setdefault(fact.fact_id, fact)
    primary = next((f for f in sorted(seen.values(), key=lambda f: f.fact_id) if _is_primary(f, finding)), None)
    if primary is None:
        primary = primary_fact(finding)
    weights = entity_weights(finding)
    related = [f for f in seen.values()
               if f.fact_id != primary.fact_id and not _is_primary(f, finding) and f.predicate not in CONTEXT_ONLY
               and _valid_in(f, finding.window) and float(f.confidence) >= limits.min_confidence]
    related.sort(key=lambda f: _relevance(f, finding, weights))
    return primary, related[: max(0, limits.max_facts - 1)], len(related)


def build_bundle(finding: Finding, source: FactSource | None = None, limits: BundleLimits = BundleLimits()) -> dict[str, Any]:
    """The bounded, deterministic, hashed and schema-checked bundle for one finding."""
    source = source or ListFactSource(())
    primary, related, candidates = select_facts(finding, source, limits)
    facts = [primary, *related]
    body = {
        "finding": finding.to_dict(),
        "facts": [f.to_dict() for f in facts],
        "limits": {"max_facts": limits.max_facts, "min_confidence": limits.min_confidence, "hops": 1,
                   "candidates": candidates, "dropped": candidates - len(related)},
    }
    bundle = {"bundle_hash": bundle_hash(body), **body}
    validate_bundle_shape(bundle)
    return bundle


def bundle_hash(bundle: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of everything but the hash itself."""
    body = {k: v for k, v in bundle.items() if k != "bundle_hash"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


_FACT_ID = {"type": "string", "pattern": "^[0-9a-f]{16,64}$"}
LOCAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["bundle_hash", "finding", "facts"],
    "properties": {
        "bundle_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "finding": {"type": "object", "required": ["finding_id", "type", "subject", "predicate", "object",
                                                   "snapshot_id", "n", "confidence", "confidence_label",
                                                   "p_value", "q_value", "evidence"]},
        "facts": {"type": "array", "minItems": 1, "items": {
            "type": "object", "required": ["fact_id", "subject", "predicate", "object", "confidence", "evidence"],
            "properties": {"fact_id": _FACT_ID}}},
        "limits": {"type": "object"},
    },
}


def validate_bundle_shape(bundle: Mapping[str, Any]) -> None:
    """Schema check: the ontology's bundle schema, plus the fields narration relies on."""
    from ontology.errors import OntologyError
    from ontology.validation import validate

    label = str(bundle.get("bundle_hash", "?"))[:12]
    try:
        validate("bundle", dict(bundle))
        jsonschema.validate(dict(bundle), LOCAL_SCHEMA)
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise GroundingError(f"bundle {label}: {path}: {exc.message}; rebuild it with narrator.bundle.build_bundle") from exc
    except OntologyError as exc:
        raise GroundingError(f"bundle {label}: {exc}") from exc


# ---- names: user-controlled strings, rendered safely --------------------------------------

MAX_NAME = 200


def clean_text(text: str) -> str:
    """NFKC, invisible characters as visible `\\uXXXX` escapes (ontology.names.show_name): what a reader is
    shown, at any length, so names in a sentence compare equal to the names in the bundle."""
    return show_name(text)


def clean_name(name: str) -> str:
    """NFKC, control/zero-width/bidi characters as visible `\\uXXXX` escapes, bounded length: what a reader is shown.

    Escaped, not dropped: `import` and `im\\u200bport` are two states and must not read as one.
    """
    return show_name(name)[:MAX_NAME]


def local_name(entity: str) -> str:
    """`state:import_data` -> `import_data`."""
    return entity.partition(":")[2] if ":" in entity else entity


def bundle_names(bundle: Mapping[str, Any]) -> list[str]:
    """Every user-controlled name in a bundle (entity local names, states inside edges/paths, string evidence)."""
    names: set[str] = set()
    finding = bundle["finding"]
    items: list[Mapping[str, Any]] = [finding, *bundle["facts"]]
    for item in items:
        for entity in (item.get("subject", ""), item.get("object", "")):
            names.add(local_name(entity))
            names.update(entity_states(entity))
            if entity.startswith("segment:"):
                names.update(local_name(entity).split("=", 1))
        names.update(_strings(item.get("evidence", {})))
    for key in ("segment", "release", "journey"):
        if finding.get(key):
            names.add(local_name(str(finding[key])))
    return sorted({clean_name(n) for n in names if n}, key=lambda n: (-len(n), n))


def _strings(obj: Any) -> Iterator[str]:
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, Mapping):
        for value in obj.values():
            yield from _strings(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _strings(value)


def facts_by_id(bundle: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["fact_id"]: f for f in bundle["facts"]}


def primary_fact_id(bundle: Mapping[str, Any]) -> str:
    return str(bundle["facts"][0]["fact_id"])
