"""Deterministic, schema-valid fact sets for the store contract suite and benchmarks/bench_neo4j.py.

Same (n, seed) always gives the same facts, hence the same fact_ids. The mix
covers entity kinds on both ends (state, outcome, journey, path, edge,
segment, release, snapshot) so every per-label statement of the Neo4j store
is exercised, and spreads facts over a few snapshots and many entities so
the entity / predicate / snapshot filters each select a proper subset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ontology.model import Fact, Provenance

JOURNEY = "activation"
SNAPSHOTS: tuple[str, ...] = ("snapA", "snapB", "snapC")
VALID = ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")
STATES = 40


def _p(x: float) -> float:
    return round(float(x), 6)


def _transitions(i: int, u: np.ndarray) -> tuple[str, str, dict[str, Any]]:
    count, total = int(u[0] * 500), 500 + i % 7
    obj = f"state:s{(i + 1) % STATES}" if i % 3 else "outcome:converted"
    return f"state:s{i % STATES}", obj, {"journey": JOURNEY, "count": count, "from_total": total,
                                          "probability": _p(count / total), "i": i}


def _dropoff(i: int, u: np.ndarray) -> tuple[str, str, dict[str, Any]]:
    subject = f"state:s{i % STATES}" if i % 2 else f"path:s{i % STATES}>s{(i + 3) % STATES}"
    return subject, f"journey:{JOURNEY}", {
        "journey": JOURNEY, "exit_probability": _p(u[0]), "reach": _p(u[1]), "n": 1000 + i, "n_reached": 300 + i % 50,
        "dropoff_outcome": "dropped", "p_value": _p(u[2] / 100), "q_value": _p(u[2] / 50), "i": i}


def _changed(i: int, u: np.ndarray) -> tuple[str, str, dict[str, Any]]:
    obj = "release:v2.3" if i % 2 else f"snapshot:{SNAPSHOTS[i % len(SNAPSHOTS)]}"
    before, after = _p(u[0]), _p(u[1])
    return f"edge:s{i % STATES}->s{(i + 1) % STATES}", obj, {
        "journey": JOURNEY, "p_before": before, "p_after": after, "n_before": 400 + i % 9, "n_after": 410 + i % 11,
        "delta": _p(after - before), "relative_change": _p((after - before) / max(before, 1e-6)), "z": _p(u[2] * 4 - 2),
        "p_value": _p(u[3] / 10), "q_value": _p(u[3] / 5), "traffic_before": 900, "traffic_after": 950,
        "traffic_changed": bool(i % 3 == 0), "attribution": "release" if i % 2 else "period",
        "releases": ["v2.3"] if i % 2 else [], "i": i}


def _segment(i: int, u: np.ndarray) -> tuple[str, str, dict[str, Any]]:
    return f"state:s{i % STATES}", f"segment:plan={('pro', 'free', 'team')[i % 3]}", {
        "journey": JOURNEY, "reach_segment": _p(u[0]), "reach_rest": _p(u[1]), "n_segment": 200 + i % 13,
        "n_rest": 800 + i % 17, "difference": _p(u[0] - u[1]), "p_value": _p(u[2] / 10), "q_value": _p(u[2] / 5), "i": i}


def _fast_path(i: int, u: np.ndarray) -> tuple[str, str, dict[str, Any]]:
    return f"path:s{i % STATES}>s{(i + 2) % STATES}", "outcome:converted", {
        "journey": JOURNEY, "count": 40 + i % 30, "share": _p(u[0] / 10), "conversion_rate": _p(u[1]),
        "median_duration_s": _p(3600 * u[2]), "median_length": _p(3 + u[3]), "quality": _p(u[0]), "n": 1100,
        "p_value": _p(u[1] / 100), "q_value": _p(u[1] / 50), "i": i}


KINDS: tuple[tuple[str, Callable[[int, np.ndarray], tuple[str, str, dict[str, Any]]]], ...] = (
    ("transitions_to", _transitions),
    ("is_dropoff_point_for", _dropoff),
    ("changed_after", _changed),
    ("more_common_in", _segment),
    ("is_fast_path_to", _fast_path),
)


def make_facts(n: int, seed: int = 7) -> list[Fact]:
    """n distinct valid facts (evidence carries its index `i`, so ids never collide)."""
    rng = np.random.default_rng(seed)
    draws = rng.random((n, 4))
    facts = []
    for i in range(n):
        predicate, build = KINDS[i % len(KINDS)]
        subject, obj, evidence = build(i, draws[i])
        provenance = Provenance(snapshot_id=SNAPSHOTS[(i // len(KINDS)) % len(SNAPSHOTS)],
                                detector=f"{predicate.split('_')[0]}_detector@1", config_hash="cfg0123456789abc",
                                engine_version="0.1.0")
        facts.append(Fact(subject=subject, predicate=predicate, object=obj, confidence=_p(draws[i][0]),
                          valid_from=VALID[0], valid_to=VALID[1], evidence=evidence, provenance=provenance))
    return facts
