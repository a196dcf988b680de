"""A detector is one unit: every finding type it declares has a complete kind, or this test names the missing part.

A registered detector declares `types` (the finding types it emits). Each type needs a kind
(narrator.kinds): its narrative plan, headline patterns, feed wording and the predicates its facts
use; each such predicate, and every predicate of the closed vocabulary, needs a FactKind (one-line
summary for retrieval, recomputation formula, search words) and a place in the ask planner's
intents. A part missing used to fail late with a KeyError in the middle of a run; here it fails
with the declaration to add.
"""

from __future__ import annotations

import dataclasses

import pytest

from detectors.registry import default_registry
from narrator import kinds
from narrator.kinds import FactKind, FindingKind, Intent, Kind, Registry
from ontology.vocabulary import FINDING_TYPES, PREDICATES


def detector_types() -> list[tuple[str, str]]:
    return sorted((cls.name, t) for cls in default_registry() for t in getattr(cls, "types", ()))


def test_every_builtin_detector_declares_its_types() -> None:
    declared = {t for _, t in detector_types()}
    assert declared >= set(FINDING_TYPES), f"finding types no detector declares: {sorted(set(FINDING_TYPES) - declared)}"


def test_the_kinds_declare_no_type_that_no_detector_emits() -> None:
    declared = {t for _, t in detector_types()}
    assert set(kinds.registry().findings) <= declared, sorted(set(kinds.registry().findings) - declared)


@pytest.mark.parametrize(("detector", "ftype"), detector_types(), ids=lambda v: str(v))
def test_a_detector_type_has_a_complete_kind(detector: str, ftype: str) -> None:
    missing = kinds.missing_parts(ftype)
    assert not missing, f"detector {detector!r} emits {ftype!r}, whose kind lacks: {'; '.join(missing)}"


@pytest.mark.parametrize("predicate", PREDICATES)
def test_a_predicate_is_summarised_recomputed_and_askable(predicate: str) -> None:
    missing = kinds.missing_fact_parts(predicate)
    assert not missing, f"predicate {predicate!r} lacks: {'; '.join(missing)}"


@pytest.mark.parametrize("ftype", FINDING_TYPES)
def test_a_kind_declares_every_predicate_its_findings_facts_use(ftype: str) -> None:
    """detectors.facts states a finding's primary fact and its supporting facts; the kind names them all."""
    from detectors.facts import finding_facts
    from tests.narrator.narrator_factories import make_finding

    finding = make_finding(ftype)
    if ftype == "dropoff_point":  # its losses by outcome become transitions_to facts
        finding = dataclasses.replace(finding, evidence={**finding.evidence, "loss_exits": {"dropped": 40}}, finding_id="")
    used = {fact.predicate for fact in finding_facts(finding, "c" * 16, "1")}
    assert len(used) >= (2 if ftype in ("activation_driver", "dropoff_point") else 1)
    undeclared = used - set(kinds.registry().finding(ftype).predicates)
    assert not undeclared, f"{ftype!r} findings state {sorted(undeclared)}, missing from FindingKind({ftype!r}).predicates"


def test_the_tables_are_views_of_the_kinds() -> None:
    """What the narrator, planner and feed read comes from the registry, so a kind cannot be half-registered."""
    from engine.app.render.common import measure_text
    from narrator import measures, planner

    reg = kinds.registry()
    assert [name for _, _, name in planner._intent_table()] == [i.name for i in reg.intents]
    assert reg.phrases["is_dropoff_point_for"] == "is a drop-off point in"
    finding = {"type": "regression", "evidence": {"relative_change": 0.25}, "subject": "state:a"}
    assert measures.headline(finding) == "relative change +25%"
    assert measure_text({"finding": {**finding, "evidence": {"p_before": 0.5}}}) == "rate 50.0% → – (–, – relative)"


def _broken() -> Registry:
    """The built-ins plus an extension that forgot its plan, its headlines and the FactKind of its predicate."""
    base = kinds.registry()
    plan = FindingKind("weekend_gap", ("is_weekend_gap_in",), None, (), base.finding("regression").feed)  # type: ignore[arg-type]
    return Registry([*base.kinds, Kind("weekend_gap", findings=(plan,))])


def test_the_check_names_each_missing_part() -> None:
    """The message a new detector's author sees."""
    assert kinds.missing_parts("weekend_gap") == [
        "a FindingKind for 'weekend_gap' (its narrative plan, headline patterns, feed wording and predicates)"]
    assert kinds.missing_parts("weekend_gap", _broken()) == [
        "FindingKind('weekend_gap').plan", "FindingKind('weekend_gap').headlines",
        "a FactKind for predicate 'is_weekend_gap_in' (its summary, recompute formula and search words)"]


def test_a_fact_kind_without_words_or_intent_is_incomplete() -> None:
    base = kinds.registry()
    rate = base.fact("has_outcome_rate")
    assert rate is not None
    quiet = dataclasses.replace(rate, words=" ")
    others = [dataclasses.replace(k, facts=tuple(f for f in k.facts if f.predicate != "has_outcome_rate"),
                                  intents=tuple(i for i in k.intents if "has_outcome_rate" not in i.predicates))
              for k in base.kinds]
    reg = Registry([*others, Kind("quiet", facts=(quiet,))])
    assert kinds.missing_fact_parts("has_outcome_rate", reg) == [
        "FactKind('has_outcome_rate').words", "an Intent asking for predicate 'has_outcome_rate' (the ask planner's vocabulary)"]


def test_two_kinds_cannot_claim_one_type_or_a_predicate_outside_the_vocabulary() -> None:
    base = kinds.registry()
    twice = Kind("again", findings=(base.finding("fast_path"),),
                 facts=(FactKind("made_up", str, lambda *a: {}, "words"),), intents=(Intent("x", "x", ("made_up",)),))
    assert kinds.problems_of_registry([*base.kinds, twice]) == [
        "finding type 'fast_path' is declared by kinds 'path_quality' and 'again'",
        "kind 'again' declares predicate 'made_up', which is not in the closed vocabulary"]
