"""Python mirror of the closed vocabulary in journeygraph.ttl (the Turtle file is the source of truth).

A test keeps the two identical. Unknown terms are refused with the list of allowed ones.
"""

from __future__ import annotations

from functools import cache

from ontology.errors import OntologyError, UnknownPredicate
from ontology.plugins import PluginRegistry

PREDICATES: tuple[str, ...] = (
    "transitions_to",
    "increases_probability_of",
    "is_activation_driver_for",
    "necessary_for_conversion",
    "is_dropoff_point_for",
    "diverges_from",
    "more_common_in",
    "less_common_in",
    "regressed_after",
    "changed_after",
    "is_revisited_in",
    "is_fast_path_to",
    "associated_with",
    "has_outcome_rate",
)

CLASSES: tuple[str, ...] = (
    "State", "Outcome", "Edge", "Segment", "Release", "Path", "Journey",
    "Snapshot", "Fact", "Finding", "Insight",
)

FINDING_TYPES: tuple[str, ...] = (
    "activation_driver",
    "necessary_for_conversion",
    "dropoff_point",
    "dropoff_cluster",
    "regression",
    "segment_divergence",
    "repeated_visit",
    "fast_path",
    "slow_path",
)

#: Where instance and vocabulary IRIs live; `jg:` in Turtle and SPARQL.
NAMESPACE = "https://w3id.org/journeygraph/"

#: Datatype properties that carry a reified fact's fields and its provenance.
DATATYPE_PROPERTIES: tuple[str, ...] = (
    "factId", "confidence", "validFrom", "validTo", "evidence", "factJson",
    "snapshotId", "detector", "configHash", "engineVersion", "entityId",
    "n", "pValue", "qValue", "lift", "reach", "probability",
)

#: Domain and range classes of each predicate (mirrors rdfs:domain/rdfs:range; () = any entity).
PREDICATE_DOMAINS: dict[str, tuple[str, ...]] = {
    "transitions_to": ("State",),
    "increases_probability_of": ("State",),
    "is_activation_driver_for": ("State",),
    "necessary_for_conversion": ("State",),
    "is_dropoff_point_for": ("Path", "State"),
    "diverges_from": ("Segment",),
    "more_common_in": ("State",),
    "less_common_in": ("State",),
    "regressed_after": ("Edge", "Outcome"),
    "changed_after": ("Edge", "Outcome"),
    "is_revisited_in": ("State",),
    "is_fast_path_to": ("Path",),
    "associated_with": (),
    "has_outcome_rate": ("Journey", "Release", "Segment"),
}

PREDICATE_RANGES: dict[str, tuple[str, ...]] = {
    "transitions_to": ("Outcome", "State"),
    "increases_probability_of": ("Outcome",),
    "is_activation_driver_for": ("Outcome",),
    "necessary_for_conversion": ("Outcome",),
    "is_dropoff_point_for": ("Journey",),
    "diverges_from": ("Segment",),
    "more_common_in": ("Segment",),
    "less_common_in": ("Segment",),
    "regressed_after": ("Release", "Snapshot"),
    "changed_after": ("Release", "Snapshot"),
    "is_revisited_in": ("Journey",),
    "is_fast_path_to": ("Outcome",),
    "associated_with": (),
    "has_outcome_rate": ("Outcome",),
}

ENTITY_KINDS: dict[str, str] = {
    "state": "State", "outcome": "Outcome", "edge": "Edge", "segment": "Segment",
    "release": "Release", "path": "Path", "journey": "Journey", "snapshot": "Snapshot",
}


def require_predicate(name: str) -> str:
    if name not in PREDICATES:
        raise UnknownPredicate(f"unknown predicate {name!r}; allowed predicates: {', '.join(PREDICATES)}")
    return name


@cache
def extension_finding_types() -> tuple[str, ...]:
    """Finding types an installed package adds: the names of its `journeygraph.kinds` entry points (ontology.plugins),
    each naming the narrator kind that tells them (narrator.kinds). Predicates stay closed."""
    return tuple(n for n in PluginRegistry("kind", ()).names() if n not in FINDING_TYPES)


def require_finding_type(name: str) -> str:
    if name not in FINDING_TYPES and name not in extension_finding_types():
        allowed = (*FINDING_TYPES, *extension_finding_types())
        raise OntologyError(f"unknown finding type {name!r}; allowed: {', '.join(allowed)} "
                            "(an extension adds one through a `journeygraph.kinds` entry point of that name)")
    return name


def entity_kind(entity: str) -> str:
    """The ontology class of an entity id such as 'state:import_data'."""
    prefix, sep, rest = entity.partition(":")
    if not sep or not rest or prefix not in ENTITY_KINDS:
        raise OntologyError(f"bad entity id {entity!r}; expected one of {', '.join(k + ':…' for k in ENTITY_KINDS)}")
    return ENTITY_KINDS[prefix]


def require_entity_kinds(subject: str, predicate: str, obj: str) -> None:
    """Refuse a fact whose subject/object classes break the predicate's rdfs:domain/rdfs:range."""
    for role, entity, allowed in (
        ("subject", subject, PREDICATE_DOMAINS[predicate]),
        ("object", obj, PREDICATE_RANGES[predicate]),
    ):
        kind = entity_kind(entity)
        if allowed and kind not in allowed:
            raise OntologyError(
                f"{predicate} needs a {role} of class {' or '.join(allowed)}, got {entity!r} ({kind}); "
                f"use an entity id such as {allowed[0].lower()}:<name>"
            )
