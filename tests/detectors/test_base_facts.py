"""has_outcome_rate facts: the Wilson interval's defining property, and the demo's rates against its counts."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from detectors.base_facts import wilson_interval

Z95 = 1.959963984540054


@pytest.mark.parametrize("count, n", [(396, 1553), (0, 50), (50, 50), (1, 7), (34, 974), (567, 942)])
def test_wilson_endpoints_solve_the_score_equation(count: int, n: int) -> None:
    """Each endpoint p satisfies |p̂ − p| = z·sqrt(p(1 − p)/n): the interval inverts the score test."""
    low, high = wilson_interval(count, n)
    p_hat = count / n
    assert 0.0 <= low <= p_hat <= high <= 1.0
    for p in (low, high):
        if 0.0 < p < 1.0:
            assert math.isclose(abs(p_hat - p), Z95 * math.sqrt(p * (1 - p) / n), rel_tol=1e-9)
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.fixture(scope="module")
def demo_rates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Any], Any]]:
    from engine.app import pipeline
    from engine.app.views import _session

    root = Path(__file__).resolve().parents[2]
    ws = tmp_path_factory.mktemp("rates") / "ws"
    pipeline.run(config_path=str(root / "fixtures" / "demo.yaml"), workspace=str(ws), quiet=True)
    with _session(str(ws)) as (opened, _, store):
        rows = opened.con.execute("SELECT snapshot_id, scope, completed FROM (SELECT snapshot_id, scope, "
                                  "CAST(json_extract(payload, '$.completed') AS INTEGER) AS completed, "
                                  "CAST(json_extract(payload, '$.mature') AS BOOLEAN) AS mature FROM snapshots) "
                                  "WHERE mature").fetchall()
        facts = [f for f in store.facts() if f.predicate == "has_outcome_rate"]
        drivers = [f for f in store.facts() if f.predicate == "is_activation_driver_for"]
        yield facts, (rows, drivers)


def test_demo_rates_cover_every_mature_scope_and_match_the_counts(demo_rates: tuple[list[Any], Any]) -> None:
    facts, (rows, drivers) = demo_rates
    mature = {sid: (scope, completed) for sid, scope, completed in rows}
    by_snapshot: dict[str, list[Any]] = {}
    for f in facts:
        by_snapshot.setdefault(f.provenance.snapshot_id, []).append(f)
    assert set(by_snapshot) == set(mature)  # all, 7 periods, 6 segment values, 2 release sides
    for sid, group in by_snapshot.items():
        assert {f.object for f in group} == {"outcome:converted", "outcome:dropped"}
        assert sum(f.evidence["count"] for f in group) == mature[sid][1]  # outcomes partition completed journeys
        for f in group:
            ev = f.evidence
            assert ev["n"] == mature[sid][1] and ev["scope"] == mature[sid][0]
            assert ev["rate"] == round(ev["count"] / ev["n"], 6)
            assert ev["ci_low"] <= ev["rate"] <= ev["ci_high"]
    overall = next(f for f in facts if f.evidence["scope"] == "all" and f.object == "outcome:converted")
    assert (overall.evidence["count"], overall.evidence["n"]) == (396, 1553)
    same = [d for d in drivers if d.provenance.snapshot_id == overall.provenance.snapshot_id]
    # the feed's "25.5% baseline" is this fact's rate; on a scope with censored journeys the driver's numbers
    # are in-progress estimates, and the baseline is theirs: reach-weighted mix of the two conversion rates
    assert all(d.evidence["baseline"] == overall.evidence["rate"] for d in same if "estimator" not in d.evidence)
    for d in (d for d in same if "estimator" in d.evidence):
        ev = d.evidence
        mix = ev["reach"] * ev["p_given_reached"] + (1 - ev["reach"]) * ev["p_given_not_reached"]
        assert ev["baseline"] == pytest.approx(mix, abs=2e-6) and ev["baseline"] != overall.evidence["rate"]
