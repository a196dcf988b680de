"""HTTP API and web page (`journeygraph serve`): the feed, insights, traces, ask, snapshots, facts, verify.

Thin over `engine.app.views`, like the CLI. JSON bodies are validated by the same
schemas as the CLI output; every error is `{"error": …}` with a fitting status
and never a stack trace, a filesystem path or a process id. Beyond loopback a
bearer token is required; without one the server answers only requests whose
Host is a loopback name (a page on another site cannot reach it by DNS
rebinding). The body limit holds for chunked bodies too. Reads use the published
database read-only (engine.publish), so a run writing meanwhile never blocks them;
503 with Retry-After is left for a workspace whose first run is still being built.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.app import views
from engine.workspace import public_message, published_stamp
from ontology.errors import ConfigError, JourneyGraphError, NotFound, WorkspaceBusy

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"
MAX_BODY = 64 * 1024
INTERVAL_SECONDS = 20.0  # estimated bootstrap work one /api/snapshots request may ask for
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
RETRY_AFTER_SECONDS = 2  # what a 503 (workspace busy with a run) asks the client to wait
_ABSOLUTE_PATH = re.compile(r"""(?<![\w.:])/(?!api/|static/|health\b)[^\s"'`]+""")


class AskBody(BaseModel):
    question: str = Field(min_length=1, max_length=500)


class VerifyBody(BaseModel):
    bundle: dict[str, Any]
    narrative: Any = Field(description="plain text with [f:ID] citations, or {sentences: [{text, fact_ids}]}")


class ErrorBody(BaseModel):
    error: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
    413: {"model": ErrorBody}, 421: {"model": ErrorBody, "description": "Host is not a loopback name (no token set)"},
    422: {"model": ErrorBody}, 500: {"model": ErrorBody},
    503: {"model": ErrorBody, "description": "nothing is published yet (the first run is still being built), or "
                                             "another process writes the database in place; retry after the "
                                             "Retry-After seconds"},
}


def create_app(workspace: str | None = None, token: str | None = None) -> FastAPI:
    from engine.app.asking import AskCache
    from engine.app.mcp import http_app

    mcp_app, mcp_lifespan = http_app(workspace, token)  # MCP over streamable HTTP at /mcp/
    app = FastAPI(title="journeygraph", version=_version(), description="Behavioural insights with provenance.",
                  lifespan=mcp_lifespan)
    app.mount("/mcp", mcp_app)
    ws = workspace

    asker = AskCache(ws)
    app.add_middleware(_Guard, token=token)
    app.add_exception_handler(Exception, _unhandled)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return JSONResponse({"error": f"invalid request at {where}: {first.get('msg', 'invalid')}"}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(JourneyGraphError)
    async def jg_error(request: Request, exc: JourneyGraphError) -> JSONResponse:
        return _error_response(exc, ws)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": _version()}

    cache = _FeedCache(ws)

    @app.get("/api/feed", responses=_ERRORS, response_model=list[dict[str, Any]])
    async def feed(journey: str | None = None, type: str | None = None, segment: str | None = None,
                   snapshot: str | None = None, min_score: float | None = None, limit: int = 50) -> Response:
        # Async and pre-serialised: the hot path is a stat, a filter and one json.dumps.
        segment = segment.removeprefix("segment:") if segment else segment
        key = (journey, type, segment, snapshot, min_score, limit)
        body = cache.body(key)
        if body is None:
            if segment and not any(_segment_matches(known, segment) for known in cache.segments()):
                known = cache.segments()
                raise NotFound(f"no segment {segment!r} in this workspace; known: "
                                f"{', '.join(known[:20]) or 'none (no segments configured)'}")
            items = cache.items()
            if snapshot:
                items = [i for i in items if i["finding"]["snapshot_id"] == snapshot]
            items = [i for i in items if _matches(i, journey, type, segment, min_score)]
            body = json.dumps(items[: max(0, min(limit, 500))], ensure_ascii=False, separators=(",", ":")).encode()
            cache.keep(key, body)
        return Response(content=body, media_type="application/json")

    @app.get("/api/insights/{insight_id}", responses=_ERRORS)
    def insight(insight_id: str) -> dict[str, Any]:
        return _insight(ws, insight_id)

    @app.get("/api/insights/{insight_id}/trace", responses=_ERRORS)
    def trace(insight_id: str) -> dict[str, Any]:
        _insight(ws, insight_id)
        return views.trace(ws, insight_id)

    @app.post("/api/ask", responses=_ERRORS)
    def ask(body: AskBody) -> dict[str, Any]:
        return asker.ask(body.question)  # engine.app.asking: the workspace read once, re-read after a run

    @app.get("/api/snapshots", responses=_ERRORS)
    def snapshots() -> list[dict[str, Any]]:
        return views.snapshots(ws)

    @app.get("/api/snapshots/{snapshot_id}", responses=_ERRORS)
    def snapshot(snapshot_id: str, intervals: int | None = Query(None, ge=2, le=5000),
                 level: float | None = Query(None, ge=0.5, lt=1.0)) -> dict[str, Any]:
        # intervals = bootstrap replicates (engine.uncertainty); the estimated work is capped per request too
        if level is not None and not intervals:
            raise StarletteHTTPException(422, "level applies to intervals: add intervals=N (e.g. 500)")
        return views.snapshot(ws, snapshot_id=snapshot_id, intervals=intervals, level=level or 0.95,
                              max_seconds=INTERVAL_SECONDS)

    @app.get("/api/graph", responses=_ERRORS)
    def graph(journey: str | None = None,
              max_states: int = Query(views.GRAPH_STATES, ge=2, le=5000)) -> dict[str, Any]:
        # stored metrics (engine.state_metrics); the rarest states grouped into "other"; on-demand work capped
        return views.graph(ws, journey=journey, max_states=max_states, max_seconds=INTERVAL_SECONDS)

    @app.get("/api/status", responses=_ERRORS)
    def status() -> dict[str, Any]:
        """Why the feed may be empty: per journey what was measured, the detectors' sample floors and the power."""
        return views.why_empty(ws)

    @app.get("/api/power", responses=_ERRORS)
    def power() -> dict[str, Any]:
        """Detection power: per release and for the latest period, each edge's n, detectable change and status."""
        from engine.app.render import power as power_footer

        return power_footer.payload(views.power(ws))

    @app.get("/api/facts", responses=_ERRORS)
    def facts(entity: str | None = None, predicate: str | None = None, snapshot: str | None = None,
              limit: int = 200) -> list[dict[str, Any]]:
        return views.facts(ws, entity=entity, predicate=predicate, snapshot_id=snapshot, limit=max(0, min(limit, 2000)))

    @app.post("/api/verify", responses=_ERRORS)
    def verify(body: VerifyBody) -> dict[str, Any]:
        return views.verify(body.bundle, body.narrative)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        path = (WEB_DIR / name).resolve()
        if path.parent != WEB_DIR.resolve() or not path.is_file():
            raise NotFound(f"no static file {name!r}")
        return FileResponse(path)

    return app


class _Guard:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the hot path): host, body size and bearer token."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        if self.expected is None and _host_name(headers.get(b"host", b"")) not in LOOPBACK:
            await _reply(scope, receive, send, 421, "this server answers only loopback host names "
                         "(127.0.0.1, localhost, [::1]); serve with --token to reach it under another name")
            return
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > MAX_BODY:
            await _reply(scope, receive, send, 413, f"request body over {MAX_BODY} bytes")
            return
        if self.expected and scope["path"].startswith(("/api/", "/mcp")):
            if not hmac.compare_digest(headers.get(b"authorization", b""), self.expected):
                await _reply(scope, receive, send, 401, "missing or wrong bearer token")
                return
        if not length.isdigit():  # chunked (or no length): read up to the limit before the app sees a byte
            receive = await _bounded_body(receive)
            if receive is None:
                await _reply(scope, _disconnected, send, 413, f"request body over {MAX_BODY} bytes")
                return
        await self.app(scope, receive, send)


async def _reply(scope: dict[str, Any], receive: Any, send: Any, status: int, message: str) -> None:
    await JSONResponse({"error": message}, status_code=status)(scope, receive, send)


async def _disconnected() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def _host_name(host: bytes) -> str:
    """The name in a Host header, without its port ('[::1]:8765' -> '::1')."""
    text = host.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[1:text.find("]")] if "]" in text else text
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


async def _bounded_body(receive: Any) -> Any:
    """A receive() that replays the whole body, read here up to MAX_BODY; None when the body is larger."""
    chunks: list[bytes] = []
    size, more = 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            chunks, more = [], False  # a disconnect: the app sees an empty body, as it would have
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > MAX_BODY:
            return None
    replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replayed() -> dict[str, Any]:
        return replay.pop() if replay else await receive()

    return replayed


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    """Never a stack trace to a client."""
    return _error_response(exc, None)


class _FeedCache:
    """The feed read once per change of the workspace file (a stat per request, not a query)."""

    def __init__(self, workspace: str | None) -> None:
        self.workspace = workspace
        self.stamp: tuple[int, int, int] | None = None
        self.cached: list[dict[str, Any]] = []
        self.known_segments: list[str] = []
        self.bodies: dict[tuple[Any, ...], bytes] = {}  # serialised answers per filter, dropped on change
        self.lock = threading.Lock()

    def items(self) -> list[dict[str, Any]]:
        stamp = published_stamp(self.workspace)  # a publish renames a new file in: a new inode
        if stamp is None:
            return views.feed_items(self.workspace)  # raises the one-line "no workspace" error
        with self.lock:
            if stamp != self.stamp:
                self.cached = [_labelled(i) for i in views.feed_items(self.workspace)]
                self.known_segments = views.segments(self.workspace)
                self.bodies = {}
                self.stamp = stamp
            return self.cached

    def segments(self) -> list[str]:
        """The segments ('key=value') the workspace's snapshots cover, read with the feed."""
        self.items()
        return self.known_segments

    def body(self, key: tuple[Any, ...]) -> bytes | None:
        self.items()  # refreshes (and clears the bodies) when the workspace changed
        return self.bodies.get(key)

    def keep(self, key: tuple[Any, ...], body: bytes) -> None:
        if len(self.bodies) < 256:  # bounded: filters come from clients
            self.bodies[key] = body


def _labelled(item: dict[str, Any]) -> dict[str, Any]:
    """A feed item with `labels`: its measure and unit, and n with its unit, as the text feed words them."""
    from engine.app.render.common import count_words, measure_text
    from narrator.measures import n_unit

    f = item["finding"]
    return {**item, "labels": {"measure": measure_text(item), "n": f"{count_words(item.get('n', f.get('n')))} {n_unit(f)}"}}


def _insight(ws: str | None, insight_id: str) -> dict[str, Any]:
    data = views.insight(ws, insight_id)
    if data is None:
        raise NotFound(f"no insight {insight_id!r}; list them with GET /api/feed")
    return data


def _segment_matches(have: str, wanted: str) -> bool:
    """'platform=android' is matched by itself, by its value ('android') and by its key ('platform')."""
    return bool(have) and (have == wanted or have.endswith("=" + wanted) or have.split("=", 1)[0] == wanted)


def _matches(item: dict[str, Any], journey: str | None, type_: str | None, segment: str | None,
             min_score: float | None) -> bool:
    finding = item.get("finding", {})
    return ((journey is None or finding.get("journey") == journey)
            and (type_ is None or finding.get("type") == type_)
            and (segment is None or _segment_matches(finding.get("segment") or "", segment))
            and (min_score is None or item.get("score", 0) >= min_score))


def _public(message: str, workspace: str | None) -> str:
    """An error message without filesystem paths or process ids (they tell a client about the machine)."""
    if workspace:
        for form in sorted({str(Path(workspace).resolve()), workspace}, key=len, reverse=True):
            message = message.replace(form, "<workspace>")
    return _ABSOLUTE_PATH.sub("…", public_message(message))


def _error_response(exc: BaseException, workspace: str | None) -> JSONResponse:
    """One mapper for the boundary: an error's class says its status (ontology/errors.py)."""
    if isinstance(exc, WorkspaceBusy):
        return JSONResponse({"error": _public(str(exc), workspace)},
                            status_code=exc.http_status, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, JourneyGraphError):
        return JSONResponse({"error": _public(str(exc), workspace)}, status_code=exc.http_status)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        log.debug("bad request", exc_info=exc)
        return JSONResponse({"error": f"bad request: {type(exc).__name__}"}, status_code=400)
    log.exception("internal error")
    return JSONResponse({"error": "internal error; see the server log"}, status_code=500)


def _version() -> str:
    from engine import __version__

    return __version__


def openapi_json(workspace: str | None = None) -> str:
    """The OpenAPI spec, as committed in docs/openapi.json."""
    return json.dumps(create_app(workspace).openapi(), indent=2, sort_keys=True) + "\n"


def serve(workspace: str | None = None, host: str = "127.0.0.1", port: int = 8765, token: str | None = None) -> None:
    import uvicorn

    token = token or os.environ.get("JOURNEYGRAPH_TOKEN")
    if host not in LOOPBACK and not token:
        raise ConfigError(f"serving on {host} beyond loopback needs a bearer token: pass --token or set JOURNEYGRAPH_TOKEN")
    app = create_app(workspace, token)
    print(f"journeygraph serving {workspace or '.journeygraph'} on http://{host}:{port}/", flush=True)
    if token:
        print(f"the web page asks for the token once per tab (or open http://{host}:{port}/#token=YOUR_TOKEN)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


if __name__ == "__main__":
    import sys

    sys.stdout.write(openapi_json())
