"""Both SDK paths end to end: the real anthropic / openai clients against a local wire-format server.

Each scenario runs once per vendor (the `server` fixture is parametrised).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from wire_servers import Answer, Fail, Hang

from narrator.narrate import narrate_bundle


def _user_text(server: Any, index: int) -> str:
    body = server.requests[index].json
    if server.vendor == "anthropic":
        return body["messages"][0]["content"]
    return body["input"]


def _system_text(server: Any, index: int) -> str:
    body = server.requests[index].json
    return body["system"][0]["text"] if server.vendor == "anthropic" else body["instructions"]


def test_good_answer_is_narrated_with_usage_and_structured_output(server, make_llm, bundle, good_json):
    server.script(Answer(good_json, input_tokens=321, output_tokens=123))
    insight = narrate_bundle(bundle, make_llm())

    assert (insight.status, insight.backend, insight.llm_failure) == ("narrated", server.vendor, None)
    assert insight.usage == {"calls": 1, "input_tokens": 321, "output_tokens": 123}
    assert insight.model == f"{server.vendor}-test-model"
    assert insight.check["ok"] is True
    assert len(server.requests) == 1
    sent = server.requests[0]
    assert sent.headers["authorization"] == "Bearer test-key"
    assert sent.headers.get("x-stainless-retry-count") == "0"
    body = sent.json
    if server.vendor == "anthropic":
        assert sent.path == "/v1/messages"
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["max_tokens"] == 700
    else:
        assert sent.path == "/v1/responses"
        assert body["text"]["format"]["strict"] is True
        assert body["store"] is False
    assert "Never use causal wording" in _system_text(server, 0)


def test_rate_limit_then_success_is_retried_by_tenacity(server, make_llm, bundle, good_json):
    server.script(Fail(429, retry_after="0"), Answer(good_json))
    insight = narrate_bundle(bundle, make_llm())

    assert insight.status == "narrated"
    assert len(server.requests) == 2
    assert [r.headers.get("x-stainless-retry-count") for r in server.requests] == ["0", "0"]
    assert insight.usage_calls[0]["attempts"] == 2


@pytest.mark.parametrize("status", [500, 503, 529], ids=["500", "503", "529-overloaded"])
def test_server_errors_until_budget_ends_fall_back_to_template(server, make_llm, bundle, status):
    server.script(Fail(status))
    insight = narrate_bundle(bundle, make_llm(max_attempts=3))

    assert len(server.requests) == 3
    assert (insight.status, insight.backend, insight.requested_backend) == ("fallback", "template", server.vendor)
    assert insight.llm_failure["error"] == "ProviderError"
    assert f"HTTP {status} after 3 attempt(s)" in insight.llm_failure["message"]
    assert insight.check["ok"] is True  # the template text shown instead is itself checked


def test_bad_request_is_not_retried(server, make_llm, bundle):
    server.script(Fail(400, message="bad schema"))
    insight = narrate_bundle(bundle, make_llm())

    assert len(server.requests) == 1
    assert insight.status == "fallback"
    assert "HTTP 400 after 1 attempt(s)" in insight.llm_failure["message"]


def test_timeouts_exhaust_the_budget_then_fall_back(server, make_llm, bundle, good_json):
    server.script(Hang(3.0, Answer(good_json)))
    insight = narrate_bundle(bundle, make_llm(timeout_s=0.25, max_attempts=2))

    assert len(server.requests) == 2
    assert insight.status == "fallback"
    assert "APITimeoutError" in insight.llm_failure["message"]


def test_one_timeout_then_success(server, make_llm, bundle, good_json):
    server.script(Hang(3.0), Answer(good_json))
    insight = narrate_bundle(bundle, make_llm(timeout_s=0.25))

    assert insight.status == "narrated"
    assert len(server.requests) == 2


def test_malformed_json_gets_one_repair_round_then_falls_back(server, make_llm, bundle):
    server.script(Answer('{"sentences": [{"text": "unterminated'))
    insight = narrate_bundle(bundle, make_llm())

    assert len(server.requests) == 2  # generate + one repair, never more
    assert insight.status == "fallback"
    assert insight.llm_failure["stage"] == "repair"
    assert insight.llm_failure["error"] == "OUTPUT_FORMAT"
    assert "not valid JSON" in _user_text(server, 1)
    assert len(insight.usage_calls) == 2  # both calls cost tokens and are recorded


def test_malformed_json_then_repaired_answer_is_accepted(server, make_llm, bundle, good_json):
    server.script(Answer("not json at all"), Answer(good_json))
    insight = narrate_bundle(bundle, make_llm())

    assert insight.status == "narrated"
    assert [c["stage"] for c in insight.usage_calls] == ["generate", "repair"]


def test_early_stop_counts_as_a_bad_answer(server, make_llm, bundle, good_json):
    stop = "max_tokens" if server.vendor == "anthropic" else "incomplete"
    server.script(Answer(good_json, stop=stop), Answer(good_json))
    insight = narrate_bundle(bundle, make_llm())

    assert insight.status == "narrated"
    assert "OUTPUT_FORMAT" in _user_text(server, 1)


def _altered(good_json: str) -> str:
    assert "57.7%" in good_json
    return good_json.replace("57.7%", "67.7%")


def test_altered_number_triggers_regeneration_then_fallback(server, make_llm, bundle, good_json):
    server.script(Answer(_altered(good_json)))
    insight = narrate_bundle(bundle, make_llm())

    assert len(server.requests) == 2
    repair = _user_text(server, 1)
    assert "NUM_UNSUPPORTED" in repair and "67.7%" in repair
    assert insight.status == "fallback" and insight.backend == "template"
    assert {f["rule"] for f in insight.llm_failure["failures"]} == {"NUM_UNSUPPORTED"}
    assert "67.7%" not in insight.narrative["text"] and "57.7%" in insight.narrative["text"]


def test_altered_number_then_corrected_answer_is_accepted(server, make_llm, bundle, good_json):
    server.script(Answer(_altered(good_json)), Answer(good_json))
    insight = narrate_bundle(bundle, make_llm())

    assert insight.status == "narrated" and insight.backend == server.vendor
    assert len(insight.usage_calls) == 2


def test_fact_id_prefixes_from_the_model_are_stored_as_full_ids(server, make_llm, bundle, good_json):
    data = json.loads(good_json)
    for s in data["sentences"] + [data["recommendation"]]:
        s["fact_ids"] = [i[:10] for i in s["fact_ids"]]
    server.script(Answer(json.dumps(data)))
    insight = narrate_bundle(bundle, make_llm())

    assert insight.status == "narrated"
    assert set(insight.fact_ids) <= {f["fact_id"] for f in bundle["facts"]}


def test_malformed_http_body_falls_back_without_repair(server, make_llm, bundle):
    from wire_servers import Raw

    server.script(Raw(200, b'{"id": "msg_01", "content": [tru'))
    insight = narrate_bundle(bundle, make_llm())

    assert len(server.requests) == 1  # a broken body is not a rate limit: no retry, no repair prompt
    assert insight.status == "fallback" and insight.llm_failure["error"] == "ProviderError"
