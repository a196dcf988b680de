"""Planted-effect and null-stream tests on the SaaS onboarding generator, through the real engine.

Streams go through the in-process engine stages (ingest → normalise → states →
journeys → snapshots on a DuckDB file under tmp_path) and then
`run_detectors` — no subprocesses, no narrator, so 20+ streams fit in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from detectors.runner import run_detectors
from engine.config import Config, load_config
from engine.feed import rank
from fixtures.demo_planted import expected_planted
from fixtures.generate_demo import DemoParams, generate, write_jsonl

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
COMPARATIVE = ("regression", "segment_divergence")
N_NULL_STREAMS = 20


def _snapshots(params: DemoParams, where: Path) -> tuple[list[Any], Config]:
    from detector_builders import snapshots_of

    where.mkdir(parents=True, exist_ok=True)
    events = where / "events.jsonl"
    write_jsonl(generate(params), events)
    cfg = load_config(FIXTURES / "demo.yaml")
    return snapshots_of(events, cfg, where / "ws"), cfg


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    params = DemoParams()
    snaps, cfg = _snapshots(params, tmp_path_factory.mktemp("planted"))
    run = run_detectors(snaps, cfg)
    return params, run, rank(run.findings, cfg)


def _matches(finding, want) -> bool:
    return (finding.type, finding.subject, finding.predicate, finding.object, finding.segment, finding.release) == (
        want["type"], want["subject"], want["predicate"], want["object"], want["segment"], want["release"])


@pytest.mark.parametrize("effect", ["activation_driver", "dropoff_point", "regression", "segment_divergence", "loop"])
def test_every_planted_effect_is_found(planted, effect):
    params, run, _ = planted
    want = next(w for w in expected_planted(params) if w["effect"] == effect)
    hits = [f for f in run.findings if _matches(f, want)]
    assert hits, f"planted {effect} not found: {want}"
    if "state" in want:
        assert hits[0].evidence["state"] == want["state"]


def test_planted_effects_rank_above_noise(planted):
    params, _, entries = planted
    wanted = expected_planted(params)
    honest = {w["subject"] for w in wanted} | {s for w in wanted for s in w["also"]}
    planted_segments = {w["segment"] for w in wanted if w["segment"]}

    def is_noise(f) -> bool:  # not a plant, nor an honest consequence the generator declares
        return f.subject not in honest and not (f.type == "segment_divergence" and f.segment in planted_segments)

    planted_ranks = [next(e.rank for e in entries if _matches(e.finding, w)) for w in wanted]
    noise_ranks = [e.rank for e in entries if is_noise(e.finding)]
    assert max(planted_ranks) < min(noise_ranks, default=10**9)


def test_planted_facts_pass_schemas_and_privacy(planted):
    from ontology.validation import validate_facts

    _, run, _ = planted
    validate_facts(run.facts, ("plan", "feature", "country"))
    assert {f.predicate for f in run.facts} >= {"transitions_to", "increases_probability_of", "regressed_after",
                                                 "diverges_from", "is_revisited_in", "is_dropoff_point_for"}


def test_planted_run_is_deterministic(planted, tmp_path):
    params, run, _ = planted
    snaps, cfg = _snapshots(params, tmp_path / "again")
    assert [f.finding_id for f in run_detectors(snaps, cfg).findings] == [f.finding_id for f in run.findings]


@pytest.fixture(scope="module")
def null_runs(tmp_path_factory):
    """20 small seeded null streams: every planted effect off, the generator's bots left in."""
    runs = []
    for seed in range(N_NULL_STREAMS):
        params = DemoParams.null(n_users=800, seed=1000 + seed)
        snaps, cfg = _snapshots(params, tmp_path_factory.mktemp(f"null{seed}"))
        runs.append(run_detectors(snaps, cfg))
    return runs


def test_null_stream_has_no_regression_or_divergence(null_runs):
    assert not [f for f in null_runs[0].findings if f.type in COMPARATIVE]


def test_null_streams_false_positive_share_within_fdr(null_runs):
    with_any = sum(any(f.type in COMPARATIVE for f in run.findings) for run in null_runs)
    assert with_any / len(null_runs) <= 0.05
    assert all(sum(run.tests.values()) > 50 for run in null_runs)  # the streams were really tested


def test_default_size_null_stream_has_no_regression_or_divergence(tmp_path):
    snaps, cfg = _snapshots(DemoParams.null(seed=3), tmp_path)
    assert not [f for f in run_detectors(snaps, cfg).findings if f.type in COMPARATIVE]
