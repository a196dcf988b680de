"""Everything the system must know about a detector's finding types is there, or this test says what is missing.

A registered detector declares `types` (the finding types it emits). Each type needs: a term in the closed
vocabulary, a narrative plan (narrator.template), a typed headline (narrator.measures) and the feed's
measure wording (engine.app.render.common); each predicate its facts use needs a one-line summary for
retrieval (narrator.summaries), a recomputation formula (narrator.recompute_formulas) and a place in the
ask planner's vocabulary (narrator.planner). A type or predicate missing from any of them used to fail
late with a KeyError in the middle of a run; here it fails with the table to extend.
"""

from __future__ import annotations

import pytest

from detectors.registry import default_registry
from engine.app.render.common import MEASURES
from narrator import measures, template
from narrator.planner import INTENTS
from narrator.recompute_formulas import RECOMPUTERS
from narrator.summaries import _RENDERERS
from ontology.vocabulary import FINDING_TYPES, PREDICATES

TYPE_TABLES = {
    "ontology.vocabulary.FINDING_TYPES": set(FINDING_TYPES),
    "narrator.template.PLANS": set(template.PLANS),
    "narrator.measures.HEADLINES": set(measures.HEADLINES),
    "engine.app.render.common.MEASURES": set(MEASURES),
}
PLANNED = {p for _, predicates, _ in INTENTS for p in predicates}
PREDICATE_TABLES = {
    "narrator.summaries._RENDERERS": set(_RENDERERS),
    "narrator.recompute_formulas.RECOMPUTERS": set(RECOMPUTERS),
}


def detector_types() -> list[tuple[str, str]]:
    return sorted((cls.name, t) for cls in default_registry() for t in getattr(cls, "types", ()))


def test_every_builtin_detector_declares_its_types() -> None:
    declared = {t for _, t in detector_types()}
    assert declared == set(FINDING_TYPES), f"finding types no detector declares: {sorted(set(FINDING_TYPES) - declared)}"


@pytest.mark.parametrize(("detector", "ftype"), detector_types(), ids=lambda v: str(v))
def test_a_detector_type_is_known_everywhere(detector: str, ftype: str) -> None:
    missing = [name for name, table in TYPE_TABLES.items() if ftype not in table]
    assert not missing, f"detector {detector!r} emits {ftype!r}, which is missing from: {', '.join(missing)}"


@pytest.mark.parametrize("predicate", PREDICATES)
def test_a_predicate_is_summarised_recomputed_and_askable(predicate: str) -> None:
    missing = [name for name, table in PREDICATE_TABLES.items() if predicate not in table]
    if predicate not in PLANNED:
        missing.append("narrator.planner.INTENTS")
    assert not missing, f"predicate {predicate!r} is missing from: {', '.join(missing)}"


def test_the_check_names_the_table_to_extend() -> None:
    """The message a new detector's author sees (a type that no table knows)."""
    missing = [name for name, table in TYPE_TABLES.items() if "weekend_gap" not in table]
    assert missing == list(TYPE_TABLES)
