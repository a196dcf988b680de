"""The CLI contract of DESIGN.md, through real subprocesses on real workspaces."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
import yaml

from ontology.validation import validate
from tests.e2e.conftest import DEMO_CONFIG, ROOT, run_cli


def test_run_summary_reconciles_and_matches_schema(demo_workspace: Path) -> None:
    con = duckdb.connect(str(demo_workspace / "journeygraph.duckdb"), read_only=True)
    summary = json.loads(con.execute("SELECT summary FROM runs").fetchone()[0])
    con.close()
    validate("run", summary)
    parts = (summary["accepted"] + summary["quarantined"]["total"] + summary["duplicates"]
             + summary["bots_filtered"] + summary["late_rejected"])
    assert parts == summary["events_read"]
    assert summary["journeys"] > summary["censored"] > 0
    assert summary["findings"] > 0 and summary["facts"] > 0 and summary["insights"] > 0


def test_two_fresh_runs_are_byte_identical(demo_workspace: Path, tmp_path: Path) -> None:
    other = tmp_path / "again"
    run_cli("run", "-c", str(DEMO_CONFIG), "-w", str(other))
    for args in (("snapshot", "--format", "json"), ("feed", "--format", "json"), ("export", "--format", "json"),
                 ("snapshots", "--format", "json")):
        first = run_cli(*args, "-w", str(demo_workspace)).stdout
        second = run_cli(*args, "-w", str(other)).stdout
        assert first == second, f"{' '.join(args)} differs between two fresh runs"


def test_rerun_reuses_immutable_snapshots(demo_copy: Path) -> None:
    def ids() -> list[tuple[str, str]]:
        con = duckdb.connect(str(demo_copy / "journeygraph.duckdb"), read_only=True)
        rows = con.execute("SELECT snapshot_id, CAST(payload AS VARCHAR) FROM snapshots ORDER BY 1").fetchall()
        con.close()
        return rows

    before = ids()
    run_cli("run", "-c", str(DEMO_CONFIG), "-w", str(demo_copy))
    assert ids() == before


def test_snapshot_json_has_design_shape(demo_workspace: Path) -> None:
    data = json.loads(run_cli("snapshot", "-w", str(demo_workspace), "--format", "json").stdout)
    for key in ("snapshot_id", "journey", "window", "journeys", "censored", "states", "transitions"):
        assert key in data
    state = data["states"][0]
    for key in ("state", "reach", "visits_mean", "exit_probability", "expected_steps", "absorption",
                "p_outcome_given_reached", "lift", "removal_effect", "removal_effect_relative"):
        assert key in state
    totals: dict[str, float] = {}
    for t in data["transitions"]:
        totals[t["from"]] = totals.get(t["from"], 0.0) + t["probability"]
    assert all(abs(v - 1.0) < 1e-5 for v in totals.values())


def test_snapshot_intervals_are_reproducible_and_bracket_the_estimates(demo_workspace: Path) -> None:
    args = ("snapshot", "-w", str(demo_workspace), "--format", "json", "--intervals", "200")
    first, again = run_cli(*args).stdout, run_cli(*args).stdout
    assert first == again  # seeded from the snapshot id: byte-identical
    data = json.loads(first)
    block = data["intervals"]
    assert (block["replicates"], block["level"], block["failed_replicates"]) == (200, 0.95, 0)
    point = {s["state"]: s for s in data["states"]}
    assert [s["state"] for s in block["states"]] == [s["state"] for s in data["states"]]
    for entry in block["states"]:
        low, high = entry["absorption"]["converted"]
        assert low <= point[entry["state"]]["absorption"]["converted"] <= high and high - low < 0.2
        if point[entry["state"]]["removal_effect"]["converted"] is None:  # the start state
            assert entry["removal_effect"] is None and entry["removal_rank"] is None
        else:
            low, high = entry["removal_effect"]["converted"]
            assert low <= point[entry["state"]]["removal_effect"]["converted"] <= high
            low_rank, high_rank = entry["removal_rank"]["interval"]
            assert low_rank >= 1 and low_rank <= entry["removal_rank"]["observed"] <= high_rank
    assert "intervals" not in json.loads(run_cli("snapshot", "-w", str(demo_workspace), "--format", "json").stdout)
    text = run_cli("snapshot", "-w", str(demo_workspace), "--intervals", "50").stdout
    assert "95% intervals, 50 bootstrap replicates" in text and "first in" in text


def test_feed_formats(demo_workspace: Path) -> None:
    items = json.loads(run_cli("feed", "-w", str(demo_workspace), "--format", "json").stdout)
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    for item in items:
        validate("feed_item", item)
    html = run_cli("feed", "-w", str(demo_workspace), "--format", "html").stdout
    assert "<svg" in html and "http://" not in html.replace("http://www.w3.org", "")
    md = run_cli("feed", "-w", str(demo_workspace), "--format", "md").stdout
    assert md.lstrip().startswith("#")


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        pytest.param({"source": "x.jsonl", "journeys": {"j": {"start": "a", "outcomes": {"c": "event_name = 'b'"}, "window": "3 parsecs"}}},
                     "journeys.j.window", id="bad-duration"),
        pytest.param({"source": "x.jsonl", "states": [{"name": "s", "when": "event_name IN (SELECT 1)"}],
                      "journeys": {"j": {"start": "a", "outcomes": {"c": "event_name = 'b'"}}}},
                     "states[0] (s).when", id="subquery-in-rule"),
        pytest.param({"source": "x.jsonl", "journeys": {"j": {"start": "a", "outcomes": {"c": "read_csv('x') = 1"}}}},
                     "journeys.j.outcomes.c", id="table-function"),
        pytest.param({"source": "x.jsonl", "journeys": {}, "nonsense": 1}, "nonsense", id="unknown-key"),
    ],
)
def test_config_errors_are_one_line_with_key_path(tmp_path: Path, config: dict, needle: str) -> None:
    path = tmp_path / "journeygraph.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = run_cli("run", "-c", str(path), "-w", str(tmp_path / "ws"), check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_source_is_one_line(tmp_path: Path) -> None:
    proc = run_cli("run", str(tmp_path / "nope.jsonl"), "-w", str(tmp_path / "ws"), check=False)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1


def test_events_on_the_command_line_are_relative_to_the_working_directory(tmp_path: Path) -> None:
    """`run data/x.jsonl -c conf/cfg.yaml`: EVENTS is a command-line path (the working directory's); only the
    config's own `source:` is relative to the config's folder (conf/ has no events: reading it would fail)."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "conf" / "cfg.yaml").write_text(DEMO_CONFIG.read_text())
    (tmp_path / "data" / "events.jsonl").write_bytes((DEMO_CONFIG.parent / "demo_events.jsonl").read_bytes())
    proc = run_cli("run", "data/events.jsonl", "-c", "conf/cfg.yaml", "-w", "ws", "--format", "json", cwd=tmp_path)
    assert json.loads(proc.stdout)["accepted"] > 0
    missing = run_cli("run", "-c", "conf/cfg.yaml", "-w", "ws2", cwd=tmp_path, check=False)  # conf/demo_events.jsonl
    assert missing.returncode == 2 and "conf/demo_events.jsonl" in missing.stderr


def test_run_without_config_infers_and_says_so(tmp_path: Path) -> None:
    events = ROOT / "fixtures" / "demo_events.jsonl"
    proc = run_cli("run", str(events), "-w", str(tmp_path / "ws"), "--format", "json")
    summary = json.loads(proc.stdout)
    assert any("start state" in note for note in summary["inferred"])
    assert any("subscription_started" in note for note in summary["inferred"])
    assert summary["journeys"] > 0 and summary["snapshots"] > 0


def test_init_writes_a_config_that_loads(tmp_path: Path) -> None:
    from engine.config import load_config

    run_cli("init", str(tmp_path))
    cfg = load_config(tmp_path / "journeygraph.yaml")
    assert cfg.journeys[0].name == "activation"
    again = run_cli("init", str(tmp_path), check=False)
    assert again.returncode == 2 and "--force" in again.stderr


def test_help_lists_every_design_command() -> None:
    out = run_cli("--help").stdout
    for cmd in ("demo", "init", "run", "feed", "ask", "trace", "verify", "snapshots", "snapshot", "export",
                "query", "serve", "detectors", "watch"):
        assert cmd in out


def test_export_turtle_parses_back_and_sparql_answers(demo_workspace: Path) -> None:
    import rdflib

    turtle = run_cli("export", "-w", str(demo_workspace), "--format", "turtle").stdout
    graph = rdflib.Graph().parse(data=turtle, format="turtle")
    facts = json.loads(run_cli("export", "-w", str(demo_workspace), "--format", "json").stdout)
    drivers = {(f["subject"], f["object"]) for f in facts if f["predicate"] == "is_activation_driver_for"}
    assert len(graph) > len(facts) and drivers
    query = ("PREFIX jg: <https://w3id.org/journeygraph/> "
             "SELECT ?s ?o WHERE { ?s jg:is_activation_driver_for ?o }")
    rows = json.loads(run_cli("query", "-w", str(demo_workspace), "--sparql", query, "--format", "json").stdout)
    assert {(r["s"], r["o"]) for r in rows} == drivers


def test_cypher_on_the_embedded_store_says_what_to_do(demo_workspace: Path) -> None:
    proc = run_cli("query", "-w", str(demo_workspace), "--cypher", "MATCH (n) RETURN n", check=False)
    assert proc.returncode == 2 and "store.backend: neo4j" in proc.stderr
