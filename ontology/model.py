"""Findings and facts: immutable, content-addressed, checked against the closed vocabulary.

A Finding is what a detector concluded about one snapshot; a Fact is the typed
triple (subject, predicate, object) with its evidence and provenance that the
knowledge graph stores. Both ids are content hashes, so the same input and
config always give the same ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ontology import vocabulary


def canonical_json(data: Any) -> str:
    """The one serialisation used for hashing and for byte-identical output."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def content_id(kind: str, data: Any, length: int = 24) -> str:
    return hashlib.sha256(f"{kind}\x00{canonical_json(data)}".encode()).hexdigest()[:length]


def _plain(value: Any) -> Any:
    """A JSON-ready copy of evidence: mappings → dicts, tuples → lists (what json would give back)."""
    kind = type(value)
    if kind is float or kind is int or kind is str or kind is bool or value is None:
        return value
    if kind is dict or isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Provenance:
    snapshot_id: str
    detector: str  # name@version
    config_hash: str
    engine_version: str


@dataclass(frozen=True)
class Fact:
    subject: str
    predicate: str
    object: str
    confidence: float
    valid_from: str
    valid_to: str
    evidence: Mapping[str, Any]
    provenance: Provenance
    fact_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        vocabulary.require_predicate(self.predicate)
        if not 0.0 <= float(self.confidence) <= 1.0:
            raise ValueError(f"fact confidence {self.confidence} outside [0, 1]")
        if not self.fact_id:
            object.__setattr__(self, "fact_id", content_id("fact", self._identity()))

    def _identity(self) -> dict[str, Any]:
        """The hashed content, built by hand: dataclasses.asdict deep-copies and is 5x slower on the write path."""
        prov = self.provenance
        return {
            "subject": self.subject, "predicate": self.predicate, "object": self.object,
            "confidence": self.confidence, "valid_from": self.valid_from, "valid_to": self.valid_to,
            "evidence": _plain(self.evidence),
            "provenance": {"snapshot_id": prov.snapshot_id, "detector": prov.detector,
                           "config_hash": prov.config_hash, "engine_version": prov.engine_version},
        }

    def to_dict(self) -> dict[str, Any]:
        data = self._identity()
        data["fact_id"] = self.fact_id
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fact:
        data = dict(data)
        data["provenance"] = Provenance(**data["provenance"])
        return cls(**data)


@dataclass(frozen=True)
class Finding:
    type: str
    detector: str  # name@version
    journey: str
    subject: str
    predicate: str
    object: str
    snapshot_id: str
    n: int
    effect: float
    p_value: float
    q_value: float
    confidence: float
    confidence_label: str
    evidence: Mapping[str, Any]
    window: tuple[str, str]
    reach: float
    actionable: bool = True
    segment: str | None = None
    release: str | None = None
    finding_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        vocabulary.require_predicate(self.predicate)
        vocabulary.require_finding_type(self.type)
        if not self.finding_id:
            object.__setattr__(self, "finding_id", content_id("finding", self._identity()))

    def _identity(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("finding_id")
        data["evidence"] = dict(self.evidence)
        data["window"] = list(self.window)
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self._identity()
        data["finding_id"] = self.finding_id
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        data = dict(data)
        data["window"] = tuple(data["window"])
        return cls(**data)
