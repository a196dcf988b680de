"""Shared fixtures: one valid evidence payload per predicate and a seeded fact factory."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ontology.model import Fact, Provenance
from ontology.store import open_store

TESTED = {"n": 1800, "p_value": 0.001, "q_value": 0.004}

#: A valid (subject, object, evidence) per predicate, as detectors would emit them.
SAMPLES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "transitions_to": ("state:sign_up", "state:feature_used", {"journey": "activation", "count": 520, "from_total": 1000, "probability": 0.52}),
    "increases_probability_of": ("state:import_data", "outcome:converted", {
        "journey": "activation", "p_given_reached": 0.577, "p_given_not_reached": 0.05, "lift": 11.54,
        "n_reached": 440, "n_not_reached": 560, "n": 1000, "p_value": 0.0001}),
    "is_activation_driver_for": ("state:import_data", "outcome:converted", {
        "journey": "activation", "reach": 0.45, "lift": 3.2, "p_given_reached": 0.577, "p_given_not_reached": 0.18,
        "n_reached": 810, "removal_effect": 0.1416, "removal_effect_relative": 0.8587, "absorption": 0.577,
        "baseline": 0.1649, **TESTED}),
    "necessary_for_conversion": ("state:invite_teammate", "outcome:converted", {
        "journey": "activation", "reach": 0.3, "n_reached": 540, "p_given_reached": 0.71, "p_given_not_reached": 0.0, **TESTED}),
    "is_dropoff_point_for": ("state:feature_used", "journey:activation", {
        "journey": "activation", "exit_probability": 0.41, "reach": 0.52, "n_reached": 936, "dropoff_outcome": "dropped", **TESTED}),
    "diverges_from": ("segment:platform=ios", "segment:platform=*", {
        "journey": "activation", "state": "feature_used", "jsd": 0.22, "n_segment": 950, "n_rest": 850,
        "test": "chi2", "p_value": 0.008, "q_value": 0.02}),
    "more_common_in": ("state:import_data", "segment:plan=pro", {
        "journey": "activation", "reach_segment": 0.6, "reach_rest": 0.4, "n_segment": 300, "n_rest": 1500,
        "difference": 0.2, "p_value": 0.001, "q_value": 0.003}),
    "less_common_in": ("state:import_data", "segment:plan=free", {
        "journey": "activation", "reach_segment": 0.3, "reach_rest": 0.5, "n_segment": 1200, "n_rest": 600,
        "difference": -0.2, "p_value": 0.001, "q_value": 0.003}),
    "regressed_after": ("edge:import_data->invite_teammate", "release:v2.3", {
        "journey": "activation", "p_before": 0.7, "p_after": 0.52, "n_before": 1200, "n_after": 1200, "delta": -0.18,
        "relative_change": -0.2571, "z": -9.1, "p_value": 0.003, "q_value": 0.01, "traffic_before": 1200,
        "traffic_after": 1180, "traffic_changed": False, "attribution": "release", "releases": ["v2.3"]}),
    "changed_after": ("outcome:converted", "snapshot:abc123", {
        "journey": "activation", "p_before": 0.16, "p_after": 0.2, "n_before": 1000, "n_after": 1100, "delta": 0.04,
        "relative_change": 0.25, "z": 2.4, "p_value": 0.016, "q_value": 0.04, "traffic_before": 1000,
        "traffic_after": 1100, "traffic_changed": True, "attribution": "period", "releases": []}),
    "is_revisited_in": ("state:feature_used", "journey:activation", {
        "journey": "activation", "visits_mean": 1.4, "reach": 0.52, "n_reached": 936, "n_repeat": 140,
        "p_convert_repeat": 0.1, "p_convert_single": 0.3, "conversion_gap": -0.2, "extra_expected_steps": 0.8,
        "p_value": 0.04, "q_value": 0.08}),
    "is_fast_path_to": ("path:sign_up>feature_used>import_data>invite_teammate", "outcome:converted", {
        "journey": "activation", "count": 40, "share": 0.036, "conversion_rate": 1.0, "median_duration_s": 5400.0,
        "median_length": 4, "quality": 0.0000463, **TESTED}),
    "associated_with": ("path:sign_up>feature_used", "outcome:dropped", {
        "journey": "activation", "kind": "slow_path", "count": 120, "median_duration_s": 86400.0}),
}


def make_fact(predicate: str = "is_activation_driver_for", *, snapshot_id: str = "snap-all", confidence: float = 0.93,
              subject: str | None = None, obj: str | None = None, **evidence: Any) -> Fact:
    sample_subject, sample_object, sample_evidence = SAMPLES[predicate]
    return Fact(
        subject=subject or sample_subject, predicate=predicate, object=obj or sample_object,
        confidence=confidence, valid_from="2026-01-01T00:00:00Z", valid_to="2026-02-01T00:00:00Z",
        evidence={**sample_evidence, **evidence},
        provenance=Provenance(snapshot_id, "activation_driver@1", "cfg0123", "0.1.0"),
    )


def many_facts(n: int, seed: int = 7, snapshots: int = 5) -> list[Fact]:
    """n distinct valid facts over every predicate, deterministic for a seed."""
    rng = random.Random(seed)
    predicates = sorted(SAMPLES)
    facts = []
    for i in range(n):
        predicate = predicates[i % len(predicates)]
        subject, obj, _ = SAMPLES[predicate]
        if subject.startswith("state:"):
            subject = f"state:s{rng.randrange(50)}"
        facts.append(make_fact(predicate, snapshot_id=f"snap{i % snapshots}", subject=subject, obj=obj,
                               confidence=round(rng.random(), 6), journey=f"j{i}"))
    return facts


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Any]:
    fact_store = open_store("embedded", None, tmp_path)
    yield fact_store
    fact_store.close()
