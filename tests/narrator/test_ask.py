"""ask: plan -> BM25 retrieval -> bounded bundle -> cited answer, on hand-built facts and a real DuckDB file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from narrator.ask import NO_ANSWER, ask, render_text
from narrator.planner import Vocabulary, plan_question, stem
from narrator.summaries import split_sentences, summarize
from ontology.errors import BadInput
from ontology.model import Fact, Provenance

SNAP_ALL, SNAP_PRO, SNAP_AFTER = "snapall0001", "snappro0001", "snapafter001"


def _fact(subject: str, predicate: str, obj: str, evidence: dict, snap: str = SNAP_ALL, conf: float = 0.9) -> Fact:
    return Fact(subject=subject, predicate=predicate, object=obj, confidence=conf,
                valid_from="2026-01-01T00:00:00Z", valid_to="2026-04-01T00:00:00Z",
                evidence={"journey": "activation", **evidence},
                provenance=Provenance(snap, "test@1", "cfg0", "0.1.0"))


def _driver(state: str, lift: float, snap: str = SNAP_ALL) -> Fact:
    return _fact(f"state:{state}", "is_activation_driver_for", "outcome:converted", {
        "reach": 0.45, "lift": lift, "p_given_reached": 0.58, "p_given_not_reached": 0.18, "n": 1800,
        "n_reached": 810, "removal_effect": 0.1416, "removal_effect_relative": 0.5, "absorption": 0.577,
        "baseline": 0.1649, "p_value": 0.001, "q_value": 0.004}, snap)


FACTS = [
    _driver("import_data", 3.2),
    _driver("feature_used", 1.6),
    _driver("invite_teammate", 2.1, snap=SNAP_PRO),  # a segment-scope fact: not the all-data answer
    _fact("state:feature_used", "is_dropoff_point_for", "journey:activation", {
        "exit_probability": 0.41, "reach": 0.52, "n": 1800, "n_reached": 936, "dropoff_outcome": "dropped",
        "p_value": 0.0001, "q_value": 0.0003}),
    _fact("segment:plan=pro", "diverges_from", "segment:plan=*", {
        "state": "import_data", "jsd": 0.22, "n_segment": 400, "n_rest": 1400, "p_value": 0.008,
        "q_value": 0.02, "test": "chi2_homogeneity"}),
    _fact("state:invite_teammate", "more_common_in", "segment:plan=pro", {
        "reach_segment": 0.61, "reach_rest": 0.33, "n_segment": 400, "n_rest": 1400, "difference": 0.28,
        "p_value": 0.0002, "q_value": 0.001}),
    _fact("edge:import_data->invite_teammate", "regressed_after", "release:v2.3", {
        "p_before": 0.7, "p_after": 0.52, "n_before": 900, "n_after": 880, "delta": -0.18,
        "relative_change": -0.257143, "z": -7.9, "p_value": 0.003, "q_value": 0.01, "traffic_before": 900,
        "traffic_after": 880, "traffic_changed": False, "attribution": "release", "releases": ["v2.3"]}, SNAP_AFTER),
    _fact("state:sign_up", "transitions_to", "state:feature_used", {"count": 936, "from_total": 1800,
                                                                     "probability": 0.52}),
]


class ListStore:
    """The FactStore read API over a list (the embedded store is another engineer's file)."""

    name = "list"

    def __init__(self, facts: list[Fact]) -> None:
        self._facts = sorted(facts, key=lambda f: f.fact_id)

    def facts(self, *, entity: str | None = None, predicate: str | None = None,
              snapshot_id: str | None = None) -> Iterator[Fact]:
        for f in self._facts:
            if entity and entity not in (f.subject, f.object):
                continue
            if predicate and f.predicate != predicate or snapshot_id and f.provenance.snapshot_id != snapshot_id:
                continue
            yield f

    def get(self, fact_id: str) -> Fact | None:
        return next((f for f in self._facts if f.fact_id == fact_id), None)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    path = Path(tmp_path_factory.mktemp("ws")) / "journeygraph.duckdb"
    db = duckdb.connect(str(path))
    db.execute("CREATE TABLE snapshots(snapshot_id VARCHAR PRIMARY KEY, tenant_id VARCHAR, journey VARCHAR, "
               "scope VARCHAR, segment_key VARCHAR, segment_value VARCHAR, release VARCHAR, "
               "window_start TIMESTAMP, window_end TIMESTAMP, payload JSON)")
    payload = json.dumps({"states": ["feature_used", "import_data", "invite_teammate", "sign_up"],
                          "outcomes": ["converted", "dropped"], "conversion_outcome": "converted"})
    rows = [(SNAP_ALL, "all", None, None, None), (SNAP_PRO, "segment", "plan", "pro", None),
            ("snapfree001", "segment", "plan", "free", None), (SNAP_AFTER, "release_after", None, None, "v2.3")]
    for sid, scope, key, value, release in rows:
        db.execute("INSERT INTO snapshots VALUES (?, '', 'activation', ?, ?, ?, ?, '2026-01-01', '2026-04-01', ?)",
                   [sid, scope, key, value, release, payload])
    yield db
    db.close()


def _ask(con: duckdb.DuckDBPyConnection, question: str) -> dict:
    return ask(question, con=con, store=ListStore(FACTS), cfg=None)


def _by_id(fact_id: str) -> Fact:
    return next(f for f in FACTS if f.fact_id == fact_id)


@pytest.mark.parametrize("question, first_subject, predicates", [
    ("Which step is most associated with converting?", "state:import_data", {"is_activation_driver_for"}),
    ("what drives conversion", "state:import_data", {"is_activation_driver_for"}),
    ("How does the pro plan differ?", "segment:plan=pro", {"diverges_from", "more_common_in"}),
    ("how do Pro users differ from the rest", "segment:plan=pro", {"diverges_from", "more_common_in"}),
    ("What changed after v2.3?", "edge:import_data->invite_teammate", {"regressed_after"}),
    ("Where do users drop off?", "state:feature_used", {"is_dropoff_point_for"}),
    ("what happens after Sign Up? transitions please", "state:sign_up", {"transitions_to"}),
], ids=["most-associated", "drives", "segment-differ", "segment-case", "release-changed", "dropoff", "transition"])
def test_answers_cite_the_right_facts(con: duckdb.DuckDBPyConnection, question: str, first_subject: str,
                                      predicates: set[str]) -> None:
    result = _ask(con, question)
    assert result["answer"] != NO_ANSWER
    assert result["fact_ids"], "an answer must cite facts"
    cited = [_by_id(i) for i in result["fact_ids"]]
    assert cited[0].subject == first_subject
    assert {f.predicate for f in cited} == predicates
    # every number in the answer is a cited fact's number, formatted like the feed (narrator.numbers' rule)
    from narrator.numbers import extract_numbers, matches_any, numeric_values

    allowed = [v for f in cited for v in numeric_values(dict(f.evidence))]
    assert result["check"]["checked"] and result["check"]["faithful"], result["check"]["failures"]
    text = re.sub(r"\[f:[0-9a-f,]+\]|\"[^\"]*\"", "", result["answer"])
    assert all(matches_any(n, allowed) for n in extract_numbers(text)), text
    assert result["plan"]["question"] == question


def test_most_associated_names_the_highest_lift_all_data_fact(con: duckdb.DuckDBPyConnection) -> None:
    result = _ask(con, "Which step is most associated with converting?")
    assert result["answer"].startswith('Of the facts found, the step most associated with "converted" is "import_data" [f:')
    lifts = [_by_id(i).evidence["lift"] for i in result["fact_ids"]]
    assert lifts == sorted(lifts, reverse=True)
    # the pro-segment driver fact is not admitted for an all-data question ahead of all-data facts
    assert result["fact_ids"][:2] == [FACTS[0].fact_id, FACTS[1].fact_id]
    first_sentence = split_sentences(summarize(FACTS[0]))[0]
    assert first_sentence[:-1] + f" [f:{FACTS[0].fact_id[:8]}]." in result["answer"]


@pytest.mark.parametrize("question, unresolved", [
    ("What is the revenue per customer in Germany?", []),
    ("What changed after v9.9?", ["v9.9"]),
    ("How does the enterprise plan differ?", ["plan=enterprise"]),
    ("", None),
], ids=["unknown-topic", "unknown-release", "unknown-segment-value", "empty"])
def test_unanswerable_questions_say_so(con: duckdb.DuckDBPyConnection, question: str, unresolved: list | None) -> None:
    if unresolved is None:
        with pytest.raises(BadInput, match="non-empty question"):
            _ask(con, question)
        return
    result = _ask(con, question)
    assert result["answer"].startswith(NO_ANSWER + " ")
    assert result["fact_ids"] == [] and result["facts"] == []
    assert result["searched"]["facts_searched"] == len(FACTS)
    assert result["searched"]["unresolved"] == unresolved
    assert render_text(result).startswith("The data does not say. ")
    assert all(u in result["answer"] for u in unresolved)


def test_enterprise_plan_resolves_only_the_key(con: duckdb.DuckDBPyConnection) -> None:
    """'enterprise' is no segment value: the plan must not invent one, and keeps the key only."""
    vocab = Vocabulary.build(FACTS, con)
    plan = plan_question("How does the enterprise plan differ?", vocab)
    assert plan.segments == ("plan",)
    assert plan.unresolved == ("plan=enterprise",)


@pytest.mark.parametrize("word, expected", [
    ("converting", "convert"), ("converted", "convert"), ("conversion", "convert"), ("dropping", "drop"),
    ("teammates", "teammat"), ("teammate", "teammat"), ("imports", "import"), ("v2.3", "v2.3"),
], ids=lambda v: str(v))
def test_stemming_joins_word_forms(word: str, expected: str) -> None:
    assert stem(word) == expected


@pytest.mark.parametrize("question, field, value", [
    ("Do people who Import Data convert?", "states", ["import_data"]),
    ("is invite-teammates associated with converting", "states", ["invite_teammate"]),
    ("pro users vs free users", "segments", ["plan=free", "plan=pro"]),
    ("what changed after V2.3", "releases", ["v2.3"]),
    ("what changed between 2026-02-01 and 2026-03-01", "window", ["2026-02-01", "2026-03-02"]),
    ("which step is most associated with converting", "outcomes", ["converted"]),
], ids=["state-spaces", "state-kebab-plural", "segment-values", "release-case", "dates", "outcome-stem"])
def test_planner_matches_the_graph_vocabulary(con: duckdb.DuckDBPyConnection, question: str, field: str,
                                              value: list) -> None:
    plan = plan_question(question, Vocabulary.build(FACTS, con)).to_dict()
    assert plan[field] == value


def test_answers_are_deterministic(con: duckdb.DuckDBPyConnection) -> None:
    first = _ask(con, "How does the pro plan differ?")
    second = ask("How does the pro plan differ?", con=con, store=ListStore(list(reversed(FACTS))), cfg=None)
    assert json.dumps(first, sort_keys=True) == json.dumps(second, sort_keys=True)


def test_bundle_is_bounded_and_holds_exactly_the_cited_facts(con: duckdb.DuckDBPyConnection) -> None:
    many = FACTS + [_fact(f"state:s{i}", "transitions_to", "state:feature_used",
                          {"count": i, "from_total": 100, "probability": i / 100}) for i in range(1, 20)]
    result = ask("which transitions go to feature used", con=con, store=ListStore(many), cfg=None)
    assert 0 < len(result["bundle"]["facts"]) <= 6
    assert sorted(f["fact_id"] for f in result["bundle"]["facts"]) == sorted(result["fact_ids"])


# ---- the bundled demo, end to end through the lead's pipeline --------------------------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    from demo_workspace import open_demo

    with open_demo(tmp_path_factory) as opened:
        yield opened


def _demo_ask(demo: tuple, question: str) -> dict:
    ws, cfg, store = demo
    return ask(question, con=ws.con, store=store, cfg=cfg)


@pytest.mark.parametrize("question, planted, leads", [
    ("Which step is most associated with converting?",
     ("state:import_data", "is_activation_driver_for", "outcome:converted"), True),
    ("What changed after v2.3?", ("edge:import_data->invite_teammate", "regressed_after", "release:v2.3"), False),
    ("Where do users drop off?", ("state:billing_page", "is_dropoff_point_for", "journey:activation"), True),
], ids=["most-associated", "changed-after-release", "dropoff"])
def test_demo_answers_name_the_planted_effects_with_citations(demo: tuple, question: str, planted: tuple,
                                                              leads: bool) -> None:
    """The fixture's planted effects (fixtures/README.md) are found and cited; the answer passes the checker."""
    result = _demo_ask(demo, question)
    cited = [(f["subject"], f["predicate"], f["object"]) for f in result["facts"]]
    assert planted in cited and (not leads or cited[0] == planted), cited
    assert all(c[1] == planted[1] for c in cited[:1])
    fid = result["facts"][cited.index(planted)]["fact_id"]
    assert f"[f:{fid[:8]}]" in result["answer"]
    assert result["check"]["faithful"], result["check"]["failures"]
    _, _, store = demo
    assert all(store.get(i) is not None for i in result["fact_ids"])


def test_demo_segment_question_cites_the_planted_divergence(demo: tuple) -> None:
    """fixtures/README.md plants an android divergence (feature_used -> help_center)."""
    result = _demo_ask(demo, "How does android differ?")
    cited = [(f["subject"], f["predicate"], f["object"]) for f in result["facts"]]
    assert cited[0] == ("segment:platform=android", "diverges_from", "segment:platform=*"), cited
    assert all("segment:platform=android" in (s, o) for s, _, o in cited)
    assert result["answer"].startswith('The facts on segment "platform=android" are these [f:')
    assert result["check"]["faithful"], result["check"]["failures"]


def test_demo_negative_control_segment_answers_only_from_its_own_facts(demo: tuple) -> None:
    """plan is the fixture's negative control: the answer cites exactly what the store holds on plan=pro
    (nothing, unless a detector emitted something), and with nothing it is exactly NO_ANSWER."""
    _, _, store = demo
    predicates = {"diverges_from", "more_common_in", "less_common_in"}
    expected = {f.fact_id for f in store.facts(entity="segment:plan=pro") if f.predicate in predicates}
    result = _demo_ask(demo, "How do pro users differ from the rest?")
    if expected:
        assert result["fact_ids"] and set(result["fact_ids"]) <= expected
    else:
        assert result["answer"].startswith(NO_ANSWER) and result["searched"]["segments"] == ["plan=pro"]


def test_demo_unanswerable_question(demo: tuple) -> None:
    result = _demo_ask(demo, "What is the revenue per customer in Germany?")
    assert result["answer"].startswith(NO_ANSWER) and result["searched"]["facts_searched"] >= 50
    assert '"revenue"' in result["answer"] and '"germany"' in result["answer"]


# ---- LLM answers: the real SDK clients against the local vendor wire servers (tests/narrator/conftest.py) ----

def _llm_reply(text: str, fact: Fact) -> str:
    return json.dumps({"sentences": [{"text": text, "fact_ids": [fact.fact_id[:8]]}]})


def test_llm_answer_is_used_when_faithful(con: duckdb.DuckDBPyConnection, server, make_llm) -> None:
    from wire_servers import Answer

    text = '"import_data" is associated with "converted" with a lift of 3.2 (n 1800).'
    server.script(Answer(_llm_reply(text, FACTS[0])))
    result = ask("Which step is most associated with converting?", con=con, store=ListStore(FACTS), cfg=None,
                 backend=make_llm())
    assert (result["backend"], result["llm"]["status"]) == (server.vendor, "answered")
    assert result["sentences"] == [{"text": text, "fact_ids": [FACTS[0].fact_id]}]
    assert result["answer"] == text[:-1] + f" [f:{FACTS[0].fact_id[:8]}]."
    sent = json.dumps(server.requests[0].json)
    assert "Which step is most associated with converting?" in sent and FACTS[0].fact_id in sent
    assert len(server.requests) == 1


@pytest.mark.parametrize("text, rule", [
    ('"import_data" is associated with "converted" with a lift of 4.5.', "NUM_UNSUPPORTED"),
    ('"import_data" drives "converted" (lift 3.2).', "CAUSAL"),
], ids=["altered-number", "causal"])
def test_unfaithful_llm_answer_falls_back_to_the_template(con: duckdb.DuckDBPyConnection, server, make_llm,
                                                          text: str, rule: str) -> None:
    from wire_servers import Answer

    server.script(Answer(_llm_reply(text, FACTS[0])))
    result = ask("Which step is most associated with converting?", con=con, store=ListStore(FACTS), cfg=None,
                 backend=make_llm())
    assert result["backend"] == "template" and result["llm"]["status"] == "fallback"
    assert any(f.startswith(rule) for f in result["llm"]["failures"])
    assert result["answer"].startswith("Of the facts found") and result["check"]["faithful"]


def test_provider_failure_falls_back_to_the_template(con: duckdb.DuckDBPyConnection, server, make_llm) -> None:
    from wire_servers import Fail

    server.script(Fail(500))
    result = ask("What changed after v2.3?", con=con, store=ListStore(FACTS), cfg=None,
                 backend=make_llm(max_attempts=2))
    assert result["backend"] == "template" and "HTTP 500" in result["llm"]["error"]
    assert len(server.requests) == 2 and result["fact_ids"][0] == FACTS[6].fact_id


def test_a_date_window_selects_facts_valid_then(con: duckdb.DuckDBPyConnection) -> None:
    may = Fact(subject="outcome:converted", predicate="changed_after", object="snapshot:snapprev001", confidence=0.8,
               valid_from="2026-05-04T00:00:00Z", valid_to="2026-05-11T00:00:00Z",
               evidence={"journey": "activation", "p_before": 0.2, "p_after": 0.26, "n_before": 500, "n_after": 520,
                         "delta": 0.06, "relative_change": 0.3, "z": 2.3, "p_value": 0.02, "q_value": 0.04,
                         "traffic_before": 1.0, "traffic_after": 1.0, "traffic_changed": False,
                         "attribution": "period", "releases": []},
               provenance=Provenance("snapmay0001", "regression@1", "cfg0", "0.1.0"))
    store = ListStore([*FACTS, may])
    inside = ask("What changed between 2026-05-04 and 2026-05-10?", con=con, store=store, cfg=None)
    assert inside["fact_ids"] == [may.fact_id] and inside["check"]["faithful"]
    outside = ask("What changed between 2026-07-01 and 2026-07-31?", con=con, store=store, cfg=None)
    assert outside["answer"].startswith(NO_ANSWER) and outside["searched"]["window"] == ["2026-07-01", "2026-08-01"]
