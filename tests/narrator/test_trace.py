"""trace: insight → sentences → facts → evidence → snapshot metrics → recomputation → raw events.

The insight is made by the real narrator (bundle + template narrative + checker)
from a finding over the hand-filled workspace of test_recompute, and stored in
the workspace's `insights` table as the pipeline stores it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from test_recompute import build_workspace, driver_fact, fact, transition_fact

from narrator.bundle import ListFactSource
from narrator.narrate import narrate_finding
from narrator.trace import load_insight, render_text, trace
from ontology.errors import JourneyGraphError
from ontology.model import Fact, Finding

WINDOW = ("2026-01-01T00:00:00Z", "2026-01-31T00:00:00Z")


class Store:
    """The FactStore read API (facts, get) over a list."""

    def __init__(self, facts: list[Fact]) -> None:
        self._facts = {f.fact_id: f for f in facts}
        self.source = ListFactSource(facts)

    def facts(self, **filters: str) -> Iterator[Fact]:
        return self.source.facts(**filters)

    def get(self, fact_id: str) -> Fact | None:
        return self._facts.get(fact_id)


def driver_finding(primary: Fact) -> Finding:
    ev = primary.evidence
    return Finding(type="activation_driver", detector="t@1", journey="activation", subject=primary.subject,
                   predicate=primary.predicate, object=primary.object, snapshot_id="s_all", n=ev["n"],
                   effect=round(ev["lift"] - 1, 6), p_value=ev["p_value"], q_value=ev["q_value"], confidence=0.8,
                   confidence_label="High", evidence=dict(ev), window=WINDOW, reach=ev["reach"])


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[duckdb.DuckDBPyConnection, Store, str]]:
    con = build_workspace(Path(tmp_path_factory.mktemp("ws")) / "journeygraph.duckdb")
    con.execute("CREATE TABLE insights(insight_id VARCHAR PRIMARY KEY, finding_id VARCHAR, payload JSON)")
    primary = driver_fact()
    related = [transition_fact("sign_up", "import_data"), transition_fact("import_data", "invite_teammate")]
    store = Store([primary, *related])
    insight = narrate_finding(driver_finding(primary), store.source)
    assert insight.status == "narrated", insight.check
    con.execute("INSERT INTO insights VALUES (?, ?, ?)", list(insight.to_row()))
    yield con, store, insight.insight_id
    con.close()


def test_trace_reaches_every_layer_and_every_number_recomputes(workspace: tuple) -> None:
    con, store, insight_id = workspace
    data = trace(insight_id, con=con, store=store)
    assert data["verify"]["ok"] is True
    assert data["sentences"] and all(s["fact_ids"] for s in data["sentences"])
    cited = {fid for s in data["sentences"] for fid in s["fact_ids"]}
    assert cited <= {f["fact"]["fact_id"] for f in data["facts"]}
    for f in data["facts"]:
        assert f["recompute"]["ok"], f["recompute"]["entries"]
        assert f["snapshot_recount"]["fields"]["transitions"]["match"]
        assert f["snapshot"]["snapshot_id"] == f["fact"]["provenance"]["snapshot_id"]
        assert f["events"] and all(e["in_events"] for e in f["events"])
    rec = data["recomputation"]
    assert rec["numbers"] == rec["matched"] >= 14 and rec["share"] == 1.0
    driver = next(f for f in data["facts"] if f["fact"]["predicate"] == "is_activation_driver_for")
    assert [s["state"] for s in driver["snapshot"]["states"]] == ["import_data"]
    assert driver["snapshot"]["states"][0]["reach"] == driver["fact"]["evidence"]["reach"]


def test_trace_json_carries_the_exact_bundle_and_narrative_for_verify(workspace: tuple) -> None:
    from narrator.checker import check

    con, store, insight_id = workspace
    data = json.loads(json.dumps(trace(insight_id, con=con, store=store)))
    stored = load_insight(con, insight_id)
    assert data["bundle"] == stored["bundle"] and data["narrative"] == stored["narrative"]
    assert check(data["bundle"], data["narrative"]).ok


@pytest.mark.parametrize("predicate_subject, expected_events", [
    (("transitions_to", "state:sign_up", "state:import_data"), {"e_j01a_0", "e_j01d_0", "e_j02a_0"}),
    (("transitions_to", "state:invite_teammate", "outcome:converted"), {"e_j01a_2", "e_j09a_3"}),
    (("is_dropoff_point_for", "state:feature_used", "journey:activation"), {"e_j03a_1", "e_j03d_1", "e_j04a_1"}),
], ids=["edge-state", "edge-outcome", "state"])
def test_sample_events_are_the_steps_behind_the_fact(workspace: tuple, predicate_subject: tuple,
                                                     expected_events: set[str]) -> None:
    from narrator.recompute import snapshot_row
    from narrator.trace import sample_events

    con, _, _ = workspace
    predicate, subject, obj = predicate_subject
    f = fact(subject, predicate, obj, {})
    events = [e["event_id"] for e in sample_events(con, f, snapshot_row(con, "s_all"), k=5)]
    assert events == sorted(events, key=lambda e: (e.rsplit("_", 1)[0], int(e.rsplit("_", 1)[1])))
    assert expected_events <= set(events)


def test_a_tampered_stored_fact_shows_as_a_mismatch(workspace: tuple) -> None:
    con, store, insight_id = workspace
    primary = next(f for f in store.facts() if f.predicate == "is_activation_driver_for")
    bad = Fact.from_dict({**primary.to_dict(), "evidence": {**primary.evidence, "n_reached": primary.evidence["n_reached"] + 1}})
    tampered = Store([f for f in store.facts() if f.fact_id != primary.fact_id])
    tampered._facts[primary.fact_id] = bad  # the store answers the cited id with altered evidence
    data = trace(insight_id, con=con, store=tampered)
    driver = next(f for f in data["facts"] if f["fact"]["predicate"] == "is_activation_driver_for")
    assert driver["recompute"]["mismatched"] == ["n_reached"]
    assert data["recomputation"]["share"] < 1.0
    assert "MISMATCH" in render_text(data)


def test_text_rendering_walks_sentence_fact_number_event(workspace: tuple) -> None:
    con, store, insight_id = workspace
    text = render_text(trace(insight_id, con=con, store=store))
    assert text.startswith(f"insight {insight_id}")
    assert "verify: ok" in text and "[1] " in text
    assert "lift" in text and "events: e_j" in text
    assert "numbers match (100.0 %)" in text


@pytest.mark.parametrize("bad_id, message", [
    ("abc", "too short"), ("ffffffffffff", "no insight ffffffffffff"), ("e6b4_%", "not a hex id"),
], ids=["short", "unknown", "wildcards"])
def test_unknown_insight_ids_name_the_fix(workspace: tuple, bad_id: str, message: str) -> None:
    con, store, _ = workspace
    with pytest.raises(JourneyGraphError, match=message):
        trace(bad_id, con=con, store=store)


def test_prefix_lookup(workspace: tuple) -> None:
    con, store, insight_id = workspace
    assert trace(insight_id[:10], con=con, store=store)["insight_id"] == insight_id


# ---- the bundled demo, end to end through the lead's pipeline --------------------------------------

def test_demo_every_insight_traces_to_recomputed_numbers_and_raw_events(tmp_path_factory: pytest.TempPathFactory) -> None:
    from demo_workspace import open_demo

    from narrator.recompute import make_context

    with open_demo(tmp_path_factory) as (ws, cfg, store):
        ids = [r[0] for r in ws.con.execute("SELECT insight_id FROM insights ORDER BY insight_id").fetchall()]
        assert ids, "the demo run wrote no insights"
        ctx = make_context(ws.con, cfg)
        for insight_id in ids:
            data = trace(insight_id, con=ws.con, store=store, ctx=ctx)
            assert data["verify"]["ok"] is True, (insight_id, data["verify"])
            rec = data["recomputation"]
            assert rec["facts_ok"] == rec["facts"] > 0 and rec["matched"] == rec["numbers"], insight_id
            for f in data["facts"]:
                assert f["snapshot_recount"]["ok"], (insight_id, f["snapshot_recount"])
                assert f["events"] and all(e["in_events"] for e in f["events"]), insight_id


def test_demo_trace_reads_the_run_config_itself_and_recomputes_q_values(tmp_path_factory: pytest.TempPathFactory) -> None:
    """As the CLI calls it (no cfg): the workspace's saved config is found, so q-values are rebuilt, not bounded."""
    from demo_workspace import open_demo

    with open_demo(tmp_path_factory) as (ws, _, store):
        first = ws.con.execute("SELECT insight_id FROM insights ORDER BY insight_id LIMIT 1").fetchone()[0]
        data = trace(first, con=ws.con, store=store)
        q = [e for f in data["facts"] for e in f["recompute"]["entries"] if e["key"] == "q_value"]
        assert q and all(e["status"] == "match" and e["recomputed"] == e["stored"] for e in q)
