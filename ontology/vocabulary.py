"""Python mirror of the closed vocabulary in journeygraph.ttl (the Turtle file is the source of truth).

A test keeps the two identical. Unknown terms are refused with the list of allowed ones.
"""

from __future__ import annotations

from ontology.errors import OntologyError, UnknownPredicate

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

ENTITY_KINDS: dict[str, str] = {
    "state": "State", "outcome": "Outcome", "edge": "Edge", "segment": "Segment",
    "release": "Release", "path": "Path", "journey": "Journey", "snapshot": "Snapshot",
}


def require_predicate(name: str) -> str:
    if name not in PREDICATES:
        raise UnknownPredicate(f"unknown predicate {name!r}; allowed predicates: {', '.join(PREDICATES)}")
    return name


def require_finding_type(name: str) -> str:
    if name not in FINDING_TYPES:
        raise OntologyError(f"unknown finding type {name!r}; allowed: {', '.join(FINDING_TYPES)}")
    return name


def entity_kind(entity: str) -> str:
    """The ontology class of an entity id such as 'state:import_data'."""
    prefix, sep, rest = entity.partition(":")
    if not sep or not rest or prefix not in ENTITY_KINDS:
        raise OntologyError(f"bad entity id {entity!r}; expected one of {', '.join(k + ':…' for k in ENTITY_KINDS)}")
    return ENTITY_KINDS[prefix]
