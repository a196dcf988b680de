"""`journeygraph mcp -w WS` driven end to end by the official MCP client over stdio."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, _env

mcp = pytest.importorskip("mcp")
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

TIMEOUT = 300.0  # generous: a shared 2-core machine; this is not a latency test
EXPECTED_TOOLS = {"feed", "ask", "trace", "verify", "snapshot", "query"}


def _payload(result: Any) -> dict[str, Any]:
    """A tool result's structured content (or its JSON text content), failing on a tool error."""
    assert not result.is_error, result.content
    if getattr(result, "structured_content", None):
        data = result.structured_content
        return data.get("result", data) if set(data) == {"result"} else data
    return json.loads(result.content[0].text)


async def _session_run(workspace: Path) -> dict[str, Any]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "engine.app.cli", "mcp", "-w", str(workspace)],
                                   env=_env(), cwd=str(ROOT))
    out: dict[str, Any] = {}
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            out["tools"] = {t.name: t for t in tools}
            out["feed"] = _payload(await session.call_tool("feed", {"limit": 3}))
            out["ask"] = _payload(await session.call_tool("ask", {"question": "what is the overall conversion rate?"}))
            out["verify_ask"] = _payload(await session.call_tool(
                "verify", {"bundle": out["ask"]["bundle"], "narrative": out["ask"]["answer"].replace("25.5%", "52.5%")}))
            first = out["feed"]["items"][0]["insight_id"]
            out["trace"] = _payload(await session.call_tool("trace", {"insight_id": first}))
            out["bad_trace"] = await session.call_tool("trace", {"insight_id": "nope"})
            out["verify"] = _payload(await session.call_tool(
                "verify", {"bundle": out["trace"]["bundle"], "narrative": {"sentences": out["trace"]["sentences"]}}))
            out["query"] = _payload(await session.call_tool(
                "query", {"sparql": "SELECT ?f WHERE { ?f a jg:Fact } LIMIT 3"}))
            out["resources"] = [str(r.uri) for r in (await session.list_resources()).resources]
            read = await session.read_resource("journeygraph://feed")
            out["resource"] = json.loads(read.contents[0].text)
    return out


@pytest.fixture(scope="module")
def mcp_run(demo_workspace: Path) -> dict[str, Any]:
    return asyncio.run(_session_run(demo_workspace))


def test_lists_the_six_read_only_tools_with_schemas(mcp_run: dict[str, Any]) -> None:
    tools = mcp_run["tools"]
    assert EXPECTED_TOOLS <= set(tools)
    assert tools["ask"].input_schema["required"] == ["question"]
    assert tools["trace"].input_schema["properties"]["insight_id"]["type"] == "string"
    assert all(tools[name].annotations.read_only_hint for name in EXPECTED_TOOLS)


def test_feed_gives_ranked_items_with_ids(mcp_run: dict[str, Any]) -> None:
    items = mcp_run["feed"]["items"]
    assert [i["rank"] for i in items] == [1, 2, 3]
    assert all(len(i["insight_id"]) == 24 and i["narrative"] for i in items)


def test_ask_answers_the_rate_with_a_percentage_and_citation(mcp_run: dict[str, Any]) -> None:
    ask = mcp_run["ask"]
    assert "%" in ask["answer"] and "[f:" in ask["answer"]
    assert ask["fact_ids"] and ask["check"]["faithful"] is True
    assert "25.5%" in ask["answer"]  # the demo's baseline: 396 of 1,553 converted
    altered = mcp_run["verify_ask"]  # the same answer with its number altered fails `verify`
    assert altered["ok"] is False and altered["failures"][0]["rule"] == "NUM_UNSUPPORTED"


def test_trace_recomputes_and_verify_accepts_its_own_narrative(mcp_run: dict[str, Any]) -> None:
    trace = mcp_run["trace"]
    assert trace["insight_id"] == mcp_run["feed"]["items"][0]["insight_id"]
    assert trace["facts"] and trace["bundle"]["facts"]
    assert mcp_run["verify"]["ok"] is True
    assert mcp_run["bad_trace"].is_error


def test_query_and_feed_resource(mcp_run: dict[str, Any]) -> None:
    assert len(mcp_run["query"]["rows"]) == 3
    assert "journeygraph://feed" in mcp_run["resources"]
    assert mcp_run["resource"]["items"][0]["insight_id"] == mcp_run["feed"]["items"][0]["insight_id"]


async def _http_run(url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    out: dict[str, Any] = {}
    async with httpx2.AsyncClient(headers=headers or {}, timeout=300.0) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write, read_timeout_seconds=TIMEOUT) as session:
                await session.initialize()
                out["tools"] = {t.name for t in (await session.list_tools()).tools}
                out["ask"] = _payload(await session.call_tool("ask", {"question": "where do users drop off?"}))
    return out


def test_serve_mounts_the_same_server_over_streamable_http(live_api: Any) -> None:
    out = asyncio.run(_http_run(live_api.url + "/mcp/"))
    assert EXPECTED_TOOLS <= out["tools"]
    assert "billing_page" in out["ask"]["answer"]  # the demo's planted drop-off point


def test_mcp_over_http_obeys_the_api_token(demo_workspace: Path) -> None:
    import http.client

    from tests.e2e.conftest import LiveServer

    with LiveServer(demo_workspace, token="s3cret") as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        conn.request("POST", "/mcp/", body=b"{}", headers={"content-type": "application/json"})
        assert conn.getresponse().status == 401
        out = asyncio.run(_http_run(server.url + "/mcp/", {"authorization": "Bearer s3cret"}))
    assert EXPECTED_TOOLS <= out["tools"]
