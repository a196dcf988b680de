"""The HTTP API against a live uvicorn server on loopback, serving the real demo workspace."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from engine.app.api import openapi_json
from ontology.validation import validate
from tests.e2e.conftest import ROOT, LiveServer


def call(url: str, method: str = "GET", body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as res:
            return res.status, json.loads(res.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_health(live_api: LiveServer) -> None:
    assert call(live_api.url + "/health") == (200, {"status": "ok", "version": "0.1.0"})


def test_feed_items_match_the_feed_schema_and_filters(live_api: LiveServer) -> None:
    status, items = call(live_api.url + "/api/feed")
    assert status == 200 and items
    for item in items:
        validate("feed_item", item)
    top_type = items[0]["finding"]["type"]
    status, filtered = call(live_api.url + f"/api/feed?type={top_type}")
    assert status == 200 and filtered and all(i["finding"]["type"] == top_type for i in filtered)
    status, high = call(live_api.url + "/api/feed?min_score=0.6")
    assert all(i["score"] >= 0.6 for i in high) and len(high) < len(items)


def test_insight_and_trace(live_api: LiveServer) -> None:
    _, items = call(live_api.url + "/api/feed")
    iid = items[0]["insight_id"]
    status, insight = call(live_api.url + f"/api/insights/{iid}")
    assert status == 200 and insight["insight_id"] == iid and insight["narrative"]["sentences"]
    status, trace = call(live_api.url + f"/api/insights/{iid}/trace")
    assert status == 200 and trace["bundle"] and trace["narrative"]


def test_unknown_insight_is_404_json(live_api: LiveServer) -> None:
    status, body = call(live_api.url + "/api/insights/nope")
    assert status == 404 and "nope" in body["error"]


def test_ask_cites_facts(live_api: LiveServer) -> None:
    status, answer = call(live_api.url + "/api/ask", "POST", {"question": "which step is most associated with converting"})
    assert status == 200 and answer["fact_ids"]
    assert "import_data" in answer["answer"]


def test_bad_bodies_get_json_errors(live_api: LiveServer) -> None:
    status, body = call(live_api.url + "/api/ask", "POST", raw=b"{not json")
    assert status in (400, 422) and isinstance(body, dict)
    status, body = call(live_api.url + "/api/ask", "POST", raw=b"x" * (70 * 1024))
    assert status == 413 and "error" in body


def test_snapshots_and_facts(live_api: LiveServer) -> None:
    status, snaps = call(live_api.url + "/api/snapshots")
    assert status == 200 and snaps
    sid = snaps[0]["snapshot_id"]
    status, snap = call(live_api.url + f"/api/snapshots/{sid}")
    assert status == 200 and snap["snapshot_id"] == sid and "intervals" not in snap
    status, with_intervals = call(live_api.url + f"/api/snapshots/{sid}?intervals=50&level=0.9")
    assert status == 200 and with_intervals["intervals"]["replicates"] == 50 and with_intervals["intervals"]["level"] == 0.9
    assert [s["state"] for s in with_intervals["intervals"]["states"]] == [s["state"] for s in snap["states"]]
    status, body = call(live_api.url + f"/api/snapshots/{sid}?intervals=100000")
    assert status == 422 and "intervals" in body["error"]
    status, body = call(live_api.url + f"/api/snapshots/{sid}?level=0.9")
    assert status == 422 and "add intervals" in body["error"]
    status, facts = call(live_api.url + "/api/facts?entity=state:import_data")
    assert status == 200 and facts
    assert all("state:import_data" in (f["subject"], f["object"]) for f in facts)


def test_verify_endpoint(live_api: LiveServer) -> None:
    _, items = call(live_api.url + "/api/feed")
    _, trace = call(live_api.url + f"/api/insights/{items[0]['insight_id']}/trace")
    status, ok = call(live_api.url + "/api/verify", "POST", {"bundle": trace["bundle"], "narrative": trace["narrative"]})
    assert status == 200 and ok["ok"] is True
    bad = dict(trace["narrative"])
    bad["sentences"] = [dict(s, text=s["text"] + " This causes churn.") for s in bad["sentences"]]
    status, res = call(live_api.url + "/api/verify", "POST", {"bundle": trace["bundle"], "narrative": bad})
    assert status == 200 and res["ok"] is False


def test_token_required_when_set(demo_workspace: Path) -> None:
    with LiveServer(demo_workspace, token="s3cret") as server:
        assert call(server.url + "/api/feed")[0] == 401
        status, items = call(server.url + "/api/feed", headers={"authorization": "Bearer s3cret"})
        assert status == 200 and items
        assert call(server.url + "/health")[0] == 200


def test_serving_beyond_loopback_needs_a_token() -> None:
    from engine.app.api import serve
    from ontology.errors import ConfigError

    with pytest.raises(ConfigError, match="token"):
        serve(host="0.0.0.0", port=1, token=None)


def test_committed_openapi_spec_is_current() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text()
    assert committed == openapi_json(), "docs/openapi.json is stale: python -m engine.app.api > docs/openapi.json"
