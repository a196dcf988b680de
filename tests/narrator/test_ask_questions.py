"""The question suite (tests/narrator/ask_suite.py) asked of real workspaces built by the pipeline.

Each question must name its expected subject; every answer must pass the
faithfulness checker; a question the data cannot answer must say so and
name what it looked for. BPI 2012 and App in the Air run when the datasets are
present in ../shared/datasets beside the clone (else those questions skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from ask_suite import QUESTIONS, Q, answered_correctly

from narrator.ask import NO_ANSWER

ROOT = Path(__file__).resolve().parents[2]
DATASETS = ROOT.parent / "shared" / "datasets"  # beside the clone, as CI has it
AITA_EVENTS = DATASETS / "appintheair_onboarding" / "sample_first_1000_users.jsonl"
AITA_CONFIG = """\
source: {events}
normalize:
  dedupe_window: 0s
  bots: {{user_agent_patterns: [], max_events_per_minute: 100000}}
  identity: {{alias_events: []}}
sessions: {{inactivity_gap: 1h}}
journeys:
  onboarding:
    level: raw
    start: onboarding_welcome_screen
    outcomes:
      passed: "event_name = 'passed'"
      lost: "event_name = 'lost'"
    conversion: passed
    window: 1h
"""


def _build(tmp: Path, name: str) -> Path | None:
    from engine.app import pipeline

    ws = tmp / name
    if name == "demo":
        config = ROOT / "fixtures" / "demo.yaml"
    elif name == "bpi":
        config = ROOT / "fixtures" / "bpi2012.yaml"
        if not (DATASETS / "bpi2012_loan_applications" / "BPI_Challenge_2012.xes.gz").exists():
            return None
    else:
        if not AITA_EVENTS.exists():
            return None
        config = tmp / "aita.yaml"
        config.write_text(AITA_CONFIG.format(events=AITA_EVENTS))
    pipeline.run(config_path=str(config), workspace=str(ws), quiet=True)
    return ws


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any] | None]:
    from engine.app import views

    tmp = tmp_path_factory.mktemp("ask-suite")
    out: dict[str, dict[str, Any] | None] = {}
    for name in ("demo", "bpi", "aita"):
        ws = _build(tmp, name)
        for q in QUESTIONS:
            if q.ws == name:
                out[q.question] = None if ws is None else views.ask(str(ws), q.question)
    return out


@pytest.mark.parametrize("q", QUESTIONS, ids=[f"{q.ws}-{q.kind}-{i}" for i, q in enumerate(QUESTIONS)])
def test_question_names_its_subject(q: Q, answers: dict[str, dict[str, Any] | None]) -> None:
    result = answers[q.question]
    if result is None:
        pytest.skip(f"{q.ws} dataset not present")
    assert answered_correctly(q, result["answer"], NO_ANSWER), result["answer"]
    check = result.get("check") or {}
    assert check.get("faithful") is not False, check.get("failures")
    if result["bundle"] is not None:  # the printed answer text, as `verify` reads it, passes too
        from engine.app.views import verify

        verdict = verify(result["bundle"], result["answer"])
        assert verdict["ok"] and verdict["numbers_checked"] > 0, verdict["failures"]


def test_suite_covers_every_kind_with_five_unanswerable() -> None:
    kinds = [q.kind for q in QUESTIONS]
    assert len(QUESTIONS) >= 30 and kinds.count("none") >= 5
    assert {"rate", "comparison", "change", "loss", "driver", "date"} <= set(kinds)
