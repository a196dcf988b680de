"""Helpers for the publishing tests (issue 18, defects 2 and 3): workspaces, runs stopped at a failpoint, traces."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.e2e.conftest import ROOT, _env, run_cli
from tests.engine.hostile import base_events, config_file, dumps, write_lines

STOP_S = 900.0  # a generous limit for a run to reach its failpoint on a loaded 2-core machine


def inputs(tmp: Path) -> tuple[Path, Path, Path]:
    """Input A, a different input B (fewer users, so every count moves) and the config both use."""
    a = write_lines(tmp / "a.jsonl", dumps(base_events(240)))
    b = write_lines(tmp / "b.jsonl", dumps(base_events(150)))
    return a, b, config_file(tmp / "c.yaml")


def outputs(ws: Path) -> tuple[str, str]:
    """What a re-run must reproduce byte for byte: `feed --format json` and `snapshot --format json`."""
    return (run_cli("feed", "-w", str(ws), "--format", "json").stdout,
            run_cli("snapshot", "-w", str(ws), "--format", "json").stdout)


def start_stopped(src: Path, cfg: Path, ws: Path, stage: str) -> subprocess.Popen[str]:
    """`journeygraph run` that stops at `stage` (JOURNEYGRAPH_FAILPOINT); returns once it says it stopped there."""
    env = {**_env(), "JOURNEYGRAPH_FAILPOINT": stage}
    proc = subprocess.Popen([sys.executable, "-m", "engine.app.cli", "run", str(src), "-c", str(cfg), "-w", str(ws)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # blocks until the line comes or the run ends; no timing involved
        seen.append(line)
        if line.startswith(f"failpoint {stage}:"):
            return proc
    proc.wait(timeout=STOP_S)
    raise AssertionError(f"the run ended (rc {proc.returncode}) without reaching failpoint {stage}:\n{''.join(seen)}")


def kill(proc: subprocess.Popen[str]) -> None:
    proc.kill()  # SIGKILL, by this process's own child handle
    proc.wait(timeout=STOP_S)
    if proc.stderr is not None:
        proc.stderr.close()


def traces(ws: Path) -> list[dict[str, Any]]:
    """The recomputation block of the trace of every visible feed item (narrator.trace through the views),
    the notices carried once from the run before included (they read that run's data: engine.carried)."""
    from engine.app import views

    return [views.trace(str(ws), item["insight_id"])["recomputation"] for item in views.feed_items(str(ws))]


def assert_traces_fully(ws: Path) -> None:
    found = traces(ws)
    assert found, "the visible feed is empty: nothing was traced"
    for rec in found:
        assert rec["matched"] == rec["numbers"] > 0 and rec["facts_ok"] == rec["facts"], rec


def feed_ids(text: str) -> list[str]:
    return [item["insight_id"] for item in json.loads(text)]
