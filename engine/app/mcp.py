"""`journeygraph mcp -w WS`: the workspace as a read-only Model Context Protocol server over stdio.

Built with the official `mcp` Python SDK (≥ 2: MCPServer, the successor of FastMCP);
`journeygraph serve` also mounts it at /mcp over streamable HTTP (same token rule as /api).
Tools: feed, ask, trace, verify, snapshot, query; resource: journeygraph://feed.
Every tool reads through engine.app.views, the same functions the CLI and the
HTTP API call, so an agent gets the same answers, each citing fact ids that
`verify` and `trace` check. Nothing here writes: the fact store opens
read-only, SPARQL accepts SELECT/ASK only and Cypher runs in a read
transaction that is rolled back if it writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ontology.errors import BadInput

FEED_URI = "journeygraph://feed"
INSTRUCTIONS = (
    "journeygraph answers product questions about user journeys from typed facts. Start with `feed` "
    "(ranked insights) or `ask` (a plain-English question). Every answer cites fact ids; `trace` shows an "
    "insight's evidence and its recomputation, `verify` checks any text against a bundle. The wording is "
    "associative: the facts describe associations in the data, never causes."
)


def _read_only() -> Any:
    from mcp.types import ToolAnnotations

    return ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def feed_summary(item: dict[str, Any]) -> dict[str, Any]:
    """One feed item as an agent needs it: rank, id, the claim, its numbers and its narrative text."""
    finding = item["finding"]
    narrative = item.get("narrative") or {}
    text = " ".join(s["text"] for s in narrative.get("sentences", []))
    rec = (narrative.get("recommendation") or {}).get("text")
    return {"rank": item["rank"], "insight_id": item["insight_id"], "type": finding["type"],
            "subject": finding["subject"], "predicate": finding["predicate"], "object": finding["object"],
            "journey": finding.get("journey"), "segment": finding.get("segment"), "release": finding.get("release"),
            "score": item["score"], "n": item["n"], "q_value": finding.get("q_value"),
            "confidence": finding.get("confidence_label"), "window": finding.get("window"),
            "narrative": text + (" " + rec if rec else ""), "fact_ids": item.get("fact_ids", [])}


def _ask_payload(data: dict[str, Any]) -> dict[str, Any]:
    """The ask result without the internal bundle plumbing (the bundle stays, for `verify`)."""
    keep = ("answer", "fact_ids", "facts", "searched", "notes", "check", "backend", "bundle", "intent")
    return {k: data[k] for k in keep if k in data}


def http_app(workspace: str | None, token: str | None) -> tuple[Any, Callable[[Any], Any]]:
    """The server as a streamable-HTTP ASGI app (stateless, JSON responses) and the lifespan it needs, for
    `journeygraph serve` to mount at /mcp behind the API's bearer-token rule. Without a token the server is
    on loopback, and the SDK's DNS-rebinding protection (localhost Host/Origin only) stays on; with one,
    the token guards it."""
    from mcp.server.transport_security import TransportSecuritySettings

    server = build_server(workspace)
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False) if token else None
    app = server.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True,
                                     transport_security=security)
    return app, lambda _app: server.session_manager.run()


def build_server(workspace: str | None) -> Any:
    """The MCP server over `workspace`; tools and the feed resource registered, not yet running."""
    from mcp.server.mcpserver import MCPServer

    from engine.app import views
    from engine.app.asking import AskCache

    server = MCPServer(name="journeygraph", instructions=INSTRUCTIONS)
    ro = _read_only()
    cache = AskCache(workspace)

    @server.tool(annotations=ro)
    def feed(limit: int = 10, snapshot: str | None = None) -> dict[str, Any]:
        """The ranked insight feed, best first: each item's insight id (for `trace`), claim, n, q-value,
        confidence and its narrative. `limit` caps the items (1-200); `snapshot` keeps one snapshot's items."""
        if not 1 <= limit <= 200:
            raise BadInput(f"limit {limit}: give 1 to 200")
        return {"items": [feed_summary(i) for i in views.feed_items(workspace, limit=limit, snapshot=snapshot)]}

    @server.tool(annotations=ro)
    def ask(question: str) -> dict[str, Any]:
        """Answer a plain-English product question ("what is the conversion rate of android users?",
        "where do users drop off?", "what got worse after v2.3?") from the facts only. The answer cites
        fact ids as [f:xxxxxxxx]; when the facts do not cover the question it says so and lists what it searched."""
        return _ask_payload(cache.ask(question))

    @server.tool(annotations=ro)
    def trace(insight_id: str) -> dict[str, Any]:
        """The audit trace of one insight (ids come from `feed`): sentence -> fact -> evidence -> snapshot,
        every number recomputed from the stored counts, and sample event ids."""
        return views.trace(workspace, insight_id)

    @server.tool(annotations=ro)
    def verify(bundle: dict[str, Any], narrative: Any) -> dict[str, Any]:
        """Check a narrative against a fact bundle (from `trace` or `ask`): every number must be a cited
        fact's number, every claim associative. `narrative` is text with [f:ID] citations or
        {"sentences": [{"text", "fact_ids"}]}. Returns ok, failures and grounding issues."""
        return views.verify(bundle, narrative)

    @server.tool(annotations=ro)
    def snapshot(snapshot_id: str | None = None, journey: str | None = None) -> dict[str, Any]:
        """Metrics of one snapshot (default: all data, first journey): per state reach, exit probability,
        absorption probabilities and removal effects, with the window and journey counts."""
        return views.snapshot(workspace, snapshot_id=snapshot_id, journey=journey)

    @server.tool(annotations=ro)
    def query(sparql: str | None = None, cypher: str | None = None, limit: int = 500) -> dict[str, Any]:
        """Read-only query of the fact graph: SPARQL SELECT/ASK on the embedded store (prefixes jg, rdf,
        rdfs, xsd, prov, owl predeclared) or Cypher on Neo4j. Give exactly one; at most `limit` rows."""
        if (sparql is None) == (cypher is None):
            raise BadInput("give exactly one of sparql or cypher")
        rows = views.query(workspace, sparql=sparql, cypher=cypher)
        return {"rows": rows[:max(1, limit)], "truncated": len(rows) > limit}

    @server.resource(FEED_URI, name="feed", description="The ranked insight feed (JSON)", mime_type="application/json")
    def feed_resource() -> str:
        items = [feed_summary(i) for i in views.feed_items(workspace)]
        return json.dumps({"items": items}, sort_keys=True, ensure_ascii=False)

    return server


def run(workspace: str | None) -> None:
    """Serve over stdio until the client closes the pipe. The workspace must exist (checked first)."""
    from engine.workspace import Workspace

    ws = Workspace.read(workspace)  # a clear NotFound before the protocol starts
    root = str(ws.path)
    ws.close()
    build_server(root).run("stdio")
