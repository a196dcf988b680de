"""Honest detectors (issue 13, part 3/4/8): losses, leakage, path quality, durations, vocabulary."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from detector_builders import make_cfg

from detectors.leakage import outcome_parts, run_summary
from detectors.runner import run_detectors
from detectors.shared import SHARED
from detectors.synthetic import chain_payload
from detectors.view import SnapView
from engine.snapshot import Snapshot
from fixtures.paper_chain import FIGURE2

# A login funnel with explicit outcomes: the welcome screen is revisited often, so each visit rarely ends
# in a loss, yet most lost journeys leave right after it; "error" loses most of its moves.
LOGIN = {
    "welcome": {"welcome": 0.45, "login": 0.35, "error": 0.05, "lost": 0.1, "passed": 0.05},
    "login": {"welcome": 0.5, "passed": 0.48, "lost": 0.02},
    "error": {"lost": 0.6, "welcome": 0.4},
}


def _run(payload: dict, **cfg):
    return run_detectors([Snapshot.from_payload(payload)], make_cfg(**cfg))


def _login(**meta) -> dict:
    return chain_payload(LOGIN, journeys=20000, start="welcome", conversion="passed", dropoff="timed_out", **meta)


def test_explicit_failure_outcomes_are_losses():
    found = {f.subject: f for f in _run(_login()).findings if f.type == "dropoff_point"}
    assert "state:error" in found  # every exit goes to the explicit "lost", none to the inactivity outcome
    ev = found["state:error"].evidence
    assert ev["loss_exits"] == {"lost": ev["exits"]} and ev["exit_probability"] == pytest.approx(0.6, abs=1e-3)
    assert ev["dropoff_outcome"] == "lost or timed_out"


def test_state_holding_most_losses_is_found_despite_a_low_exit_rate():
    view = SnapView(Snapshot.from_payload(_login()))
    found = {f.subject: f for f in _run(_login()).findings if f.type == "dropoff_point"}
    ev = found["state:welcome"].evidence
    assert ev["exit_probability"] < 0.4 <= ev["loss_share"]  # per move it would not qualify
    lost = view.outcome_count("lost") + view.outcome_count("timed_out")
    assert ev["lost_journeys"] == lost and ev["loss_share"] == pytest.approx(ev["exits"] / lost, abs=1e-6)
    assert ev["loss_rank"] == 1 and found["state:welcome"].q_value <= 0.05
    assert found["state:welcome"].effect == pytest.approx(ev["exit_probability"] - ev["baseline_exit"], abs=1e-6)


def _with_parts(payload: dict, parts: dict[str, str]) -> dict:
    """Mark states as logged at their outcome's event in every journey that reaches them."""
    out = copy.deepcopy(payload)
    out["outcome_adjacent"] = {"within_s": 5, "counts": {s: {o: out["reach_counts"][s]} for s, o in parts.items()}}
    return out


def test_state_logged_at_the_outcome_is_never_a_driver():
    plain = _run(chain_payload(FIGURE2, journeys=100_000, start="sign_up"))
    assert "state:import_data" in {f.subject for f in plain.findings if f.type == "activation_driver"}
    leaky = _run(_with_parts(chain_payload(FIGURE2, journeys=100_000, start="sign_up"), {"import_data": "converted"}))
    assert "state:import_data" not in {f.subject for f in leaky.findings}
    assert not [f for f in leaky.facts if f.subject == "state:import_data" and f.predicate == "increases_probability_of"]


def test_outcome_part_needs_95_percent_of_its_journeys():
    payload = chain_payload(FIGURE2, journeys=100_000, start="sign_up")
    reached = payload["reach_counts"]["import_data"]
    payload["outcome_adjacent"] = {"within_s": 5, "counts": {"import_data": {"converted": int(reached * 0.94)},
                                                             "invite_teammate": {"converted": payload["reach_counts"]["invite_teammate"]}}}
    view = SnapView(Snapshot.from_payload(payload))
    assert outcome_parts(view) == {"invite_teammate": "converted"}
    lines = run_summary([Snapshot.from_payload(payload)])
    assert len(lines) == 1 and '"invite_teammate"' in lines[0] and '"converted"' in lines[0] and "5 s" in lines[0]


def test_necessary_step_that_is_part_of_the_outcome_is_not_reported():
    chain = {"sign_up": {"feature": 0.6, "dropped": 0.4}, "feature": {"accepted": 0.3, "dropped": 0.7},
             "accepted": {"converted": 1.0}}
    base = _run(chain_payload(chain, journeys=5000, start="sign_up"))
    assert "state:accepted" in {f.subject for f in base.findings if f.type == "necessary_for_conversion"}
    leaky = _run(_with_parts(chain_payload(chain, journeys=5000, start="sign_up"), {"accepted": "converted"}))
    assert "state:accepted" not in {f.subject for f in leaky.findings}


def test_increases_probability_of_only_when_significant_after_fdr():
    chain = {"sign_up": {"a": 0.5, "b": 0.5}, "a": {"converted": 0.105, "dropped": 0.895},
             "b": {"converted": 0.1, "dropped": 0.9}}
    payload = chain_payload(chain, journeys=2000, start="sign_up")
    view = SnapView(Snapshot.from_payload(payload))
    test = SHARED["reach_tests"](view)["a"]
    assert test.lift is not None and test.lift > 1.0 and test.p_value > 0.05  # a lift of ~1.05, not significant
    run = _run(payload)
    assert not [f for f in run.facts if f.predicate == "increases_probability_of"]


def _paths_payload(entries: list[dict], by_class: dict) -> dict:
    base = {"sign_up": {"a": 0.5, "b": 0.3, "dropped": 0.2}, "a": {"converted": 0.5, "declined": 0.3, "dropped": 0.2},
            "b": {"converted": 0.1, "declined": 0.6, "dropped": 0.3}}
    return chain_payload(base, journeys=10000, start="sign_up", paths=entries,
                         durations={"median_s": 3600.0, "median_length": 3, "by_class": by_class})


BY_CLASS = {"converted": {"median_s": 3600.0, "median_length": 3}, "lost": {"median_s": 3600.0, "median_length": 3}}


def _entry(path, outcome, count, seq_count, seq_conv, duration, **extra):
    return {"path": path, "outcome": outcome, "count": count, "share": count / 10000, "actors": count,
            "conversion_rate": seq_conv / seq_count, "sequence_count": seq_count, "sequence_conversions": seq_conv,
            "median_duration_s": duration, "median_length": len(path), **extra}


def test_path_counted_from_all_its_entries_not_only_the_shown_ones():
    entries = [_entry(["sign_up", "a"], "converted", 800, 840, 800, 600.0)]  # its 40 lost journeys are not shown
    fast = [f for f in _run(_paths_payload(entries, BY_CLASS)).findings if f.type == "fast_path"]
    assert len(fast) == 1
    assert fast[0].evidence["count"] == 840
    assert fast[0].evidence["conversion_rate"] == pytest.approx(800 / 840, abs=1e-6)


def test_a_high_converting_path_slower_than_the_median_converter_is_not_fast():
    entries = [_entry(["sign_up", "a", "a"], "converted", 800, 840, 800, 4000.0)]  # 95 % convert, 4000 s > 3600 s
    assert not [f for f in _run(_paths_payload(entries, BY_CLASS)).findings if f.type == "fast_path"]


def test_one_state_path_is_never_judged():
    entries = [_entry(["sign_up"], "converted", 900, 900, 900, 10.0)]
    assert not [f for f in _run(_paths_payload(entries, BY_CLASS)).findings if f.type in ("fast_path", "slow_path")]


def test_quick_rejection_is_not_a_slow_path():
    entries = [_entry(["sign_up", "b"], "declined", 1700, 1700, 0, 38.0)]  # lost at once, 0 % conversion
    assert not [f for f in _run(_paths_payload(entries, BY_CLASS)).findings if f.type in ("fast_path", "slow_path")]


def test_slow_path_is_slow_against_journeys_with_the_same_outcome_class():
    by_class = {"converted": {"median_s": 50000.0, "median_length": 3}, "lost": {"median_s": 3000.0, "median_length": 2}}
    entries = [_entry(["sign_up", "b", "b"], "declined", 1500, 1600, 40, 20000.0)]
    slow = [f for f in _run(_paths_payload(entries, by_class)).findings if f.type == "slow_path"]
    assert len(slow) == 1
    ev = slow[0].evidence
    assert ev["outcome_class"] == "lost" and ev["class_median_duration_s"] == 3000.0
    assert ev["time_ratio"] == pytest.approx(20000 / 3000 * 3 / 2, abs=1e-6)
    # against the converted journeys' median (50 000 s) the same path would be fast, not slow
    swapped = {"converted": by_class["lost"], "lost": by_class["converted"]}
    assert not [f for f in _run(_paths_payload(entries, swapped)).findings if f.type == "slow_path"]


# ---- through the engine: durations and outcome-adjacent counts come from real timestamps -------------

CONFIG = """
source: events.jsonl
normalize: {bots: {user_agent_patterns: [], max_events_per_minute: 100000}}
journeys:
  loan:
    level: raw
    start: submitted
    outcomes:
      approved: "event_name = 'approved'"
      declined: "event_name = 'declined'"
      stalled: {inactive_for: 1d}
    conversion: approved
    window: 3d
"""


def _events() -> list[dict]:
    rows: list[dict] = []

    def add(user: str, name: str, seconds: int, lifecycle: str = "complete") -> None:
        minute, sec = divmod(seconds, 60)
        hour, minute = divmod(minute, 60)
        stamp = f"2026-01-05T{hour:02d}:{minute:02d}:{sec:02d}.000Z"
        rows.append({"event_id": f"e{len(rows)}", "user_id": user, "event_name": name, "timestamp": stamp,
                     "properties": {"lifecycle_transition": lifecycle}})

    def review(user: str, seconds: int) -> None:  # one work item: three lifecycle events, one visit
        for lifecycle in ("schedule", "start", "complete"):
            add(user, "review", seconds, lifecycle)

    for i in range(10):
        add(f"ok{i}", "submitted", 0), review(f"ok{i}", 60), review(f"ok{i}", 3000)  # reviewed twice
        add(f"ok{i}", "registered", 3600), add(f"ok{i}", "approved", 3600)  # same instant, logged first
        add(f"idle{i}", "submitted", 0), review(f"idle{i}", 60)              # then silence: stalled
        add(f"no{i}", "submitted", 0), review(f"no{i}", 60), add(f"no{i}", "declined", 120)
    rows.append({"event_id": "late", "user_id": "late", "event_name": "submitted", "timestamp": "2026-01-15T00:00:00.000Z"})
    return rows


@pytest.fixture(scope="module")
def loan_snapshot(tmp_path_factory):
    from detector_builders import snapshots_of

    from engine.config import load_config

    where: Path = tmp_path_factory.mktemp("loan")
    (where / "events.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _events()))
    (where / "loan.yaml").write_text(CONFIG)
    cfg = load_config(where / "loan.yaml")
    snaps = snapshots_of(where / "events.jsonl", cfg, where / "ws")
    return next(s for s in snaps if s.payload["scope"] == "all")


def test_dropped_journeys_durations_stop_at_the_last_event(loan_snapshot):
    durations = loan_snapshot.payload["durations"]
    assert loan_snapshot.payload["outcome_counts"] == {"approved": 10, "declined": 10, "stalled": 10}
    # 60 s (stalled, not 60 s + the 1-day timeout) ×10, 120 s ×10, 3600 s ×10
    assert durations["median_s"] == 120.0
    assert durations["by_class"] == {"converted": {"median_s": 3600.0, "median_length": 8.0},
                                     "lost": {"median_s": 90.0, "median_length": 4.0}}


def test_state_logged_with_the_outcome_is_counted_as_adjacent(loan_snapshot):
    adjacent = loan_snapshot.payload["outcome_adjacent"]
    assert adjacent["counts"] == {"registered": {"approved": 10}}
    assert outcome_parts(SnapView(loan_snapshot)) == {"registered": "approved"}


def test_lifecycle_variants_of_one_work_item_are_one_visit(loan_snapshot):
    from detectors.repeated_visit import revisit_evidence

    payload = loan_snapshot.payload
    assert payload["visit_counts"]["review"] == 120  # 30 journeys' lifecycle events, 6 for each approved one
    assert payload["lifecycle_visits"]["visit_counts"]["review"] == 40  # two work items ×10, one ×20
    assert payload["lifecycle_visits"]["repeat_counts"]["review"] == 10
    view = SnapView(loan_snapshot)
    merged = revisit_evidence(view, "review", 2.0)
    assert merged["lifecycle_merged"] and merged["visits_mean"] == pytest.approx(40 / 30)
    assert merged["n_repeat"] == 10 and merged["p_convert_repeat"] == 1.0 and merged["p_convert_single"] == 0.0
    plain = revisit_evidence(view, "review", 2.0, merge_lifecycle=False)
    assert plain["visits_mean"] == pytest.approx(4.0) and plain["n_repeat"] == 30
