"""A feed after a run on a smaller input traces 100 %, the notices it carries from the run before included (issue 18).

Run 1 reads three files, run 2 the first two (fewer events): run 2's feed carries the findings it no longer
finds once, as "resolved" notices (engine.lifecycle), whose numbers came from run 1's data. That data
(engine.carried) must stay readable while the notice is visible, also to a reader during the next run
(whose garbage collection runs at its start), and go once no feed carries the notice any more. Real
workspaces, real `journeygraph` processes, the trace as the CLI and the API give it.
"""

from __future__ import annotations

import json
import shutil
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engine.workspace import Workspace
from tests.e2e.conftest import LiveServer, run_cli
from tests.e2e.publishing import kill, start_stopped
from tests.engine.hostile import base_events, config_file, dumps, write_lines

USERS, FILES = 240, 3


@pytest.fixture(scope="module")
def smaller(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A workspace after run 1 on three files and run 2 on the first two of them (and a copy after run 1)."""
    tmp = tmp_path_factory.mktemp("carried")
    (tmp / "data").mkdir()
    events = base_events(USERS)
    for k in range(FILES):  # users 0-79, 80-159, 160-239: dropping a file drops whole journeys
        write_lines(tmp / "data" / f"part{k}.jsonl", dumps([e for e in events if int(e["user_id"][1:]) * FILES // USERS == k]))
    src, cfg, ws = str(tmp / "data" / "*.jsonl"), config_file(tmp / "c.yaml"), tmp / "ws"
    run_cli("run", src, "-c", str(cfg), "-w", str(ws))
    shutil.copytree(ws, tmp / "after_run1")
    (tmp / "data" / f"part{FILES - 1}.jsonl").unlink()
    run_cli("run", src, "-c", str(cfg), "-w", str(ws))
    return {"src": Path(src), "cfg": cfg, "ws": ws, "after_run1": tmp / "after_run1"}


def _feed(ws: Path) -> list[dict[str, Any]]:
    return list(json.loads(run_cli("feed", "-w", str(ws), "--format", "json").stdout))


def _carried(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [i for i in items if i["status"] == "resolved" and i.get("resolved_after") is None]


def _assert_traces_fully(data: dict[str, Any]) -> None:
    rec = data["recomputation"]
    assert rec["matched"] == rec["numbers"] > 0 and rec["facts_ok"] == rec["facts"] > 0, (data["insight_id"], rec)
    for fact in data["facts"]:
        assert fact["events"] and all(e["in_events"] for e in fact["events"]), data["insight_id"]


def _cli_trace(ws: Path, insight_id: str) -> dict[str, Any]:
    return dict(json.loads(run_cli("trace", insight_id, "-w", str(ws), "--format", "json").stdout))


def _layer_files(ws: Path) -> set[str]:
    return {p.relative_to(ws).as_posix() for top in ("silver", "gold") for p in (ws / top).rglob("*.parquet")}


def _named(ws: Path) -> tuple[set[str], set[str]]:
    """(paths the manifest names, paths carried items name) of the published database."""
    con = Workspace.read(ws).con
    try:
        manifest = {r[0] for r in con.execute("SELECT path FROM parquet_files").fetchall()}
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        kept = {r[0] for r in con.execute("SELECT path FROM carried_files").fetchall()} if "carried_files" in tables else set()
        return manifest, kept
    finally:
        con.close()


def test_every_item_of_the_smaller_runs_feed_traces_fully(smaller: dict[str, Path]) -> None:
    ws = smaller["ws"]
    items = _feed(ws)
    assert _carried(items), "run 2 carried no notice from run 1: the test would check nothing"
    for item in items:
        _assert_traces_fully(_cli_trace(ws, item["insight_id"]))


def test_a_carried_notice_traces_exactly_as_in_the_run_that_found_it(smaller: dict[str, Path]) -> None:
    """Every layer of the trace (snapshot metrics, their recount, each number, the sample events) as run 1 showed it."""
    for item in _carried(_feed(smaller["ws"])):
        assert _cli_trace(smaller["ws"], item["insight_id"]) == _cli_trace(smaller["after_run1"], item["insight_id"])


def test_the_api_traces_a_carried_notice_fully(smaller: dict[str, Path]) -> None:
    ws = smaller["ws"]
    with LiveServer(ws) as server:
        for item in _carried(_feed(ws)):
            with urllib.request.urlopen(f"{server.url}/api/insights/{item['insight_id']}/trace", timeout=120) as res:
                _assert_traces_fully(json.loads(res.read()))


def test_a_reader_during_the_next_run_still_traces_the_carried_notices(smaller: dict[str, Path], tmp_path: Path) -> None:
    """The next run collects garbage at its start; the published feed it has not yet replaced must keep its files."""
    ws = tmp_path / "ws"
    shutil.copytree(smaller["ws"], ws)
    manifest, kept = _named(ws)
    assert kept - manifest, "the carried notices read no file of their own: the garbage collection is not exercised"
    proc = start_stopped(smaller["src"], smaller["cfg"], ws, "narrator")
    try:
        for item in _carried(_feed(ws)):
            _assert_traces_fully(_cli_trace(ws, item["insight_id"]))
        assert kept <= _layer_files(ws)
    finally:
        kill(proc)


def test_the_kept_files_go_once_no_feed_carries_their_notice(smaller: dict[str, Path], tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(smaller["ws"], ws)
    manifest, kept = _named(ws)
    own = kept - manifest  # files only the carried notices read (run 1's, replaced by run 2)
    assert own and own <= _layer_files(ws)
    run_cli("run", str(smaller["src"]), "-c", str(smaller["cfg"]), "-w", str(ws))  # run 3: the same input
    assert not _carried(_feed(ws)), "a notice is carried once"
    assert _named(ws)[1] == set(), "run 3 carries nothing, so it names no kept file"
    for item in _feed(ws):
        _assert_traces_fully(_cli_trace(ws, item["insight_id"]))
    run_cli("run", str(smaller["src"]), "-c", str(smaller["cfg"]), "-w", str(ws))  # run 4 collects run 3's garbage
    manifest, _ = _named(ws)
    assert not own & _layer_files(ws)
    assert _layer_files(ws) == manifest, "every file left is one the published run reads"
    assert not list((ws / "gold" / "carried").rglob("*.parquet"))


def test_persisting_insights_cite_only_the_current_runs_facts(tmp_path: Path) -> None:
    """The fact store keeps every run's facts; an insight that persists into a smaller run must be narrated
    from this run's facts, not from an older run's facts of the same entities (which had outranked them by
    confidence and stated the old counts: the demo's persisting items traced 17/23, 37/53 and 32/38)."""
    root = Path(__file__).resolve().parents[2]
    rows = [json.loads(line) for line in (root / "fixtures" / "demo_events.jsonl").read_text().splitlines() if line]
    cuts = ("2026-02-10", "2026-02-24")  # three periods of the demo: the last file holds the release's weeks
    (tmp_path / "data").mkdir()
    for k in range(3):
        write_lines(tmp_path / "data" / f"part{k}.jsonl",
                    dumps([r for r in rows if sum(r["timestamp"] >= c for c in cuts) == k]))
    cfg = tmp_path / "demo.yaml"
    cfg.write_text((root / "fixtures" / "demo.yaml").read_text().replace(
        "source: demo_events.jsonl", f"source: {tmp_path / 'data' / '*.jsonl'}"))
    ws = tmp_path / "ws"
    run_cli("run", "-c", str(cfg), "-w", str(ws))
    (tmp_path / "data" / "part2.jsonl").unlink()
    run_cli("run", "-c", str(cfg), "-w", str(ws))
    persisting = [i for i in _feed(ws) if i["status"] == "persisting"]
    assert persisting
    for item in persisting:
        _assert_traces_fully(_cli_trace(ws, item["insight_id"]))
