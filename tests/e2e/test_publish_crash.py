"""kill -9 at every stage boundary of a run on new input (issue 18, defect 2).

A run stopped by JOURNEYGRAPH_FAILPOINT=<stage> and then killed leaves the workspace as the run before
it published it: the old feed, whose every number still recomputes from the tables beside it. A re-run
reproduces a clean run's feed and snapshot byte for byte. Real processes and real files throughout.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli
from tests.e2e.publishing import assert_traces_fully, inputs, kill, outputs, start_stopped

BEFORE_PUBLISH = ("ingest", "journeys", "snapshots", "narrator", "publish")  # "publish": closed, fsynced, not renamed


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A workspace after a run of A, and what a clean run of B after A shows."""
    tmp = tmp_path_factory.mktemp("crash")
    a, b, cfg = inputs(tmp)
    after_a = tmp / "after_a"
    run_cli("run", str(a), "-c", str(cfg), "-w", str(after_a))
    clean = tmp / "clean"
    shutil.copytree(after_a, clean)
    run_cli("run", str(b), "-c", str(cfg), "-w", str(clean))
    return {"a": a, "b": b, "cfg": cfg, "after_a": after_a, "old": outputs(after_a), "clean": outputs(clean),
            "clean_ws": clean}


def test_the_inputs_move_the_numbers(prepared: dict[str, object]) -> None:
    """Otherwise the checks below could not tell the old feed's tables from the new run's."""
    assert prepared["old"] != prepared["clean"]


@pytest.mark.parametrize("stage", BEFORE_PUBLISH)
def test_a_run_killed_before_publishing_leaves_the_old_run_whole(prepared: dict[str, object], tmp_path: Path,
                                                                 stage: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(prepared["after_a"], ws)  # type: ignore[arg-type]
    proc = start_stopped(prepared["b"], prepared["cfg"], ws, stage)  # type: ignore[arg-type]
    try:
        assert outputs(ws) == prepared["old"], "a reader during the run sees the old run, and is not refused"
    finally:
        kill(proc)
    assert (ws / ".build").is_dir(), "the killed run's private copy is left behind (removed by the next run)"
    assert outputs(ws) == prepared["old"]
    assert_traces_fully(ws)
    run_cli("run", str(prepared["b"]), "-c", str(prepared["cfg"]), "-w", str(ws))
    assert outputs(ws) == prepared["clean"]
    assert not (ws / ".build").exists()
    assert_traces_fully(ws)


def test_a_run_killed_just_after_the_switch_shows_the_new_run_whole(prepared: dict[str, object], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(prepared["after_a"], ws)  # type: ignore[arg-type]
    kill(start_stopped(prepared["b"], prepared["cfg"], ws, "published"))
    assert outputs(ws) == prepared["clean"]
    assert_traces_fully(ws)
    run_cli("run", str(prepared["b"]), "-c", str(prepared["cfg"]), "-w", str(ws))
    assert not (ws / ".build").exists()
    again = tmp_path / "again"  # B was published, so a re-run is a second run of B: compare with a clean one
    shutil.copytree(prepared["clean_ws"], again)  # type: ignore[arg-type]
    run_cli("run", str(prepared["b"]), "-c", str(prepared["cfg"]), "-w", str(again))
    assert outputs(ws) == outputs(again)


def test_a_first_run_killed_before_publishing_leaves_no_workspace(prepared: dict[str, object], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    kill(start_stopped(prepared["a"], prepared["cfg"], ws, "narrator"))  # type: ignore[arg-type]
    missing = run_cli("feed", "-w", str(ws), check=False)
    assert missing.returncode == 2 and "no workspace" in missing.stderr
    run_cli("run", str(prepared["a"]), "-c", str(prepared["cfg"]), "-w", str(ws))
    assert outputs(ws) == prepared["old"]
