"""A workspace made by `journeygraph run FILE` with no config works with every command and the API.

The file is the committed App in the Air sample in its original GA4/Firebase
shape (`event_timestamp` in microseconds, `user_pseudo_id`); the run must
recognise it, infer `passed` as the conversion, save a schema-valid config
(and a journeygraph.yaml) in the workspace, and every later command must read
that workspace (before, they failed with "Additional properties are not
allowed ('inactivity_gap_s', 'weights' were unexpected)").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.config import load_config
from engine.workspace import Workspace
from tests.e2e.conftest import ROOT, LiveServer, run_cli
from tests.e2e.test_api import call

SAMPLE = ROOT / "fixtures" / "real" / "appintheair_train_first_1000_users.csv"


@pytest.fixture(scope="module")
def noconfig(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    ws = tmp_path_factory.mktemp("noconfig") / "ws"
    summary = json.loads(run_cli("run", str(SAMPLE), "-w", str(ws), "--format", "json").stdout)
    return ws, summary


def test_run_names_the_reader_and_the_conversion(noconfig) -> None:
    _, summary = noconfig
    assert (summary["events_read"], summary["accepted"], summary["actors"]) == (7424, 7424, 1000)
    notes = "\n".join(summary["inferred"])
    assert "GA4 / Firebase BigQuery export" in notes and "epoch microseconds" in notes
    assert "conversion: 'passed'" in notes and "failure: 'lost'" in notes


def test_the_saved_config_is_valid_and_reproduces_the_run(noconfig) -> None:
    ws, _ = noconfig
    cfg = load_config(ws / "journeygraph.yaml")  # validated against the schema
    journey = cfg.journeys[0]
    assert journey.conversion_outcome == "passed"  # outcomes are named after their events
    assert dict(cfg.normalize.fields) == {"anonymous_id": "user_pseudo_id", "timestamp": "event_timestamp"}
    assert cfg.normalize.timestamp_unit == "us"
    assert [o.when for o in journey.outcomes if o.when] == ["event_name = 'passed'", "event_name = 'lost'"]
    with_config = json.loads(run_cli("run", "-c", str(ws / "journeygraph.yaml"), "-w", str(ws.parent / "again"),
                                     "--format", "json").stdout)
    assert with_config["journeys"] == noconfig[1]["journeys"] and with_config["insights"] == noconfig[1]["insights"]
    workspace = Workspace.open(ws, create=False, read_only=True)
    try:
        assert workspace.load_config_dict()["raw"]["journeys"]["journey"]["start"] == journey.start
    finally:
        workspace.con.close()


def test_every_command_reads_the_workspace(noconfig, tmp_path) -> None:
    ws, _ = noconfig
    w = ("-w", str(ws))
    items = json.loads(run_cli("feed", *w, "--format", "json").stdout)
    assert items, "the sample yields insights"
    assert "outcome:passed" in json.dumps(items), "the feed names the conversion by its event"
    insight = items[0]["insight_id"]
    for fmt in ("text", "md", "html"):
        assert run_cli("feed", *w, "--format", fmt, "--limit", "3").stdout.strip()
    assert "journeys" in run_cli("snapshot", *w).stdout
    assert json.loads(run_cli("snapshots", *w, "--format", "json").stdout)
    assert run_cli("ask", "why do users drop off?", *w).stdout.strip()
    trace = json.loads(run_cli("trace", insight, *w, "--format", "json").stdout)
    assert trace["bundle"]
    (tmp_path / "bundle.json").write_text(json.dumps(trace["bundle"]))
    (tmp_path / "narrative.json").write_text(json.dumps(trace["narrative"]))
    verified = run_cli("verify", "--bundle", str(tmp_path / "bundle.json"), "--narrative", str(tmp_path / "narrative.json"),
                       check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for fmt in ("turtle", "jsonld", "json"):
        assert run_cli("export", *w, "--format", fmt).stdout.strip()
    assert json.loads(run_cli("query", *w, "--format", "json", "--sparql",
                              "SELECT ?s WHERE { ?s ?p ?o } LIMIT 3").stdout)


def test_the_api_and_page_read_the_workspace(noconfig) -> None:
    ws, _ = noconfig
    with LiveServer(ws) as server:
        status, items = call(server.url + "/api/feed")
        assert status == 200 and items
        assert call(server.url + "/api/graph")[0] == 200
        status, answer = call(server.url + "/api/ask", "POST", {"question": "what drives conversion?"})
        assert status == 200 and answer
        assert call(server.url + f"/api/insights/{items[0]['insight_id']}/trace")[0] == 200
        assert call(server.url + "/api/snapshots")[0] == 200
        import urllib.request

        with urllib.request.urlopen(server.url + "/", timeout=60) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
