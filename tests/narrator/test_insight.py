"""Insights carry their provenance, have deterministic ids, fit the insight schema and round-trip DuckDB."""

from __future__ import annotations

import json

import duckdb
import pytest
from narrator_factories import make_bundle, make_finding, related_facts

from engine.config import NarratorConfig
from narrator.backends import make_backend
from narrator.bundle import ListFactSource
from narrator.insight import Insight
from narrator.narrate import narrate_bundle, narrate_finding, prompt_version
from ontology.errors import ProviderError
from ontology.validation import validate
from ontology.vocabulary import FINDING_TYPES


@pytest.mark.parametrize("ftype", FINDING_TYPES)
def test_template_insight_is_deterministic_and_schema_valid(ftype):
    first = narrate_bundle(make_bundle(ftype))
    second = narrate_bundle(make_bundle(ftype))
    assert first.insight_id == second.insight_id
    assert json.dumps(first.to_dict(), sort_keys=True) == json.dumps(second.to_dict(), sort_keys=True)
    payload = first.to_dict()
    validate("insight", payload)
    assert payload["status"] == "narrated" and payload["check"]["ok"] is True
    assert payload["narrative"]["backend"] == "template" and payload["prompt_version"] == "template@1"
    assert payload["bundle_hash"] == payload["bundle"]["bundle_hash"]
    per_sentence = [i for s in payload["narrative"]["sentences"] for i in s["fact_ids"]]
    assert set(payload["fact_ids"]) == set(per_sentence) <= {f["fact_id"] for f in payload["bundle"]["facts"]}
    assert payload["narrative"]["sentences"][-1]["text"] == payload["narrative"]["recommendation"]["text"]


def test_insight_id_tracks_finding_bundle_and_narrative():
    base = narrate_bundle(make_bundle())
    other_bundle = narrate_bundle(make_bundle(facts=[]))  # same finding, different bundle
    other_finding = narrate_bundle(make_bundle(a=0.5771))
    assert len({base.insight_id, other_bundle.insight_id, other_finding.insight_id}) == 3


def test_llm_insight_records_backend_model_prompt_parameters_usage(server, make_llm, good_json):
    from wire_servers import Answer

    server.script(Answer(good_json, input_tokens=50, output_tokens=40))
    bundle = make_bundle()
    insight = narrate_bundle(bundle, make_llm(timeout_s=4.0))
    payload = insight.to_dict()
    validate("insight", payload)
    assert payload["backend"] == server.vendor and payload["model"] == f"{server.vendor}-test-model"
    assert payload["prompt_version"] == prompt_version() == "narrate_system@2+narrate_user@1+narrate_repair@1"
    assert payload["parameters"]["max_tokens"] == 700 and payload["parameters"]["timeout_s"] == 4.0
    assert payload["parameters"]["bundle_limits"]["max_facts"] == 6
    assert payload["usage"] == {"calls": 1, "input_tokens": 50, "output_tokens": 40}
    assert payload["usage_calls"][0]["stage"] == "generate"
    # same narrative text from a different backend: same insight id (content hash)
    assert insight.insight_id == narrate_bundle(bundle).insight_id


def test_duckdb_round_trip(tmp_path):
    insight = narrate_finding(make_finding(), ListFactSource(related_facts()))
    con = duckdb.connect(str(tmp_path / "jg.duckdb"))
    con.execute("CREATE TABLE insights(insight_id VARCHAR PRIMARY KEY, finding_id VARCHAR, payload JSON)")
    con.execute("INSERT INTO insights VALUES (?, ?, ?)", list(insight.to_row()))
    con.close()
    con = duckdb.connect(str(tmp_path / "jg.duckdb"), read_only=True)
    (payload,) = con.execute("SELECT payload FROM insights WHERE insight_id = ?", [insight.insight_id]).fetchone()
    con.close()
    restored = Insight.from_dict(json.loads(payload))
    assert restored.insight_id == insight.insight_id
    assert restored.to_dict() == insight.to_dict()


@pytest.mark.parametrize("backend, env, expect", [
    ("template", {}, None),
    ("anthropic", {"ANTHROPIC_API_KEY": "k"}, "AnthropicBackend"),
    ("openai", {"OPENAI_API_KEY": "k"}, "OpenAIBackend"),
], ids=["template", "anthropic", "openai"])
def test_make_backend_from_config(backend, env, expect):
    made = make_backend(NarratorConfig(backend=backend, base_url="http://127.0.0.1:9/v1", max_attempts=2), env)
    assert (type(made).__name__ if made else None) == expect
    if made:
        assert made.settings.max_attempts == 2 and made.settings.api_key == "k" and made.model


@pytest.mark.parametrize("backend, error, match", [
    ("anthropic", ProviderError, "ANTHROPIC_API_KEY is not set"),
    ("openai", ProviderError, "OPENAI_API_KEY is not set"),
    ("gemini", ValueError, "unknown"),
], ids=["anthropic-no-key", "openai-no-key", "unknown-backend"])
def test_make_backend_refuses(backend, error, match):
    with pytest.raises(error, match=match):
        make_backend(NarratorConfig(backend=backend), {})
