"""Local HTTP servers that speak the Anthropic Messages and OpenAI wire formats.

The real `anthropic` and `openai` SDK clients are pointed at these (base_url),
so tests exercise the real request encoding, error classes, timeouts and
retries with no network. Each server plays a script of steps, one per request
(the last step repeats), and records every request it received.

    with WireServer("anthropic") as server:
        server.script(Fail(429, retry_after="0"), Answer('{"sentences": []}'))
        client = anthropic.Anthropic(api_key="k", base_url=server.base_url, max_retries=0)
        ...
        server.requests[0].json["messages"]

Anthropic: POST /v1/messages (base_url without /v1). OpenAI: POST /v1/responses
and /v1/chat/completions (base_url with /v1).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    """A successful reply whose model output is `text` (or a forced tool call with `tool_input`, Anthropic)."""

    text: str = ""
    input_tokens: int = 120
    output_tokens: int = 80
    stop: str | None = None  # anthropic stop_reason / openai status / chat finish_reason; vendor default if None
    tool_input: dict[str, Any] | None = None
    tool_name: str = "emit"


@dataclass(frozen=True)
class Fail:
    """An HTTP error in the vendor's error body format."""

    status: int
    retry_after: str | None = None
    message: str = "scripted failure"


@dataclass(frozen=True)
class Hang:
    """Sleep before answering (longer than the client's timeout to provoke a timeout)."""

    seconds: float
    then: Answer | Fail | None = None


@dataclass(frozen=True)
class Raw:
    """Bytes exactly as given (for malformed HTTP bodies)."""

    status: int
    body: bytes
    content_type: str = "application/json"


Step = Answer | Fail | Hang | Raw


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


_ANTHROPIC_ERRORS = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_error",
                     500: "api_error", 503: "api_error", 529: "overloaded_error"}


def anthropic_body(step: Answer, model: str) -> dict[str, Any]:
    if step.tool_input is not None:
        content = [{"type": "tool_use", "id": "toolu_01", "name": step.tool_name, "input": step.tool_input}]
        stop = step.stop or "tool_use"
    else:
        content = [{"type": "text", "text": step.text}]
        stop = step.stop or "end_turn"
    return {"id": "msg_01wire", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}}


def openai_response_body(step: Answer, model: str) -> dict[str, Any]:
    status = step.stop or "completed"
    message = {"type": "message", "id": "msg_01wire", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": step.text, "annotations": []}]}
    return {"id": "resp_01wire", "object": "response", "created_at": 1767225600, "model": model, "status": status,
            "output": [message], "parallel_tool_calls": False, "tool_choice": "auto", "tools": [],
            "incomplete_details": None if status == "completed" else {"reason": "max_output_tokens"},
            "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens,
                      "total_tokens": step.input_tokens + step.output_tokens,
                      "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}}


def openai_chat_body(step: Answer, model: str) -> dict[str, Any]:
    return {"id": "chatcmpl-01wire", "object": "chat.completion", "created": 1767225600, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": step.text, "refusal": None},
                         "finish_reason": step.stop or "stop", "logprobs": None}],
            "usage": {"prompt_tokens": step.input_tokens, "completion_tokens": step.output_tokens,
                      "total_tokens": step.input_tokens + step.output_tokens}}


def error_body(vendor: str, step: Fail) -> dict[str, Any]:
    if vendor == "anthropic":
        return {"type": "error", "error": {"type": _ANTHROPIC_ERRORS.get(step.status, "api_error"),
                                           "message": step.message}}
    kind = "rate_limit_exceeded" if step.status == 429 else "server_error" if step.status >= 500 else "invalid_request_error"
    return {"error": {"message": step.message, "type": kind, "param": None, "code": None}}


class WireServer:
    """A scripted vendor endpoint on 127.0.0.1 (free port), started and stopped by the test that needs it."""

    def __init__(self, vendor: str) -> None:
        if vendor not in ("anthropic", "openai"):
            raise ValueError(f"vendor must be anthropic or openai, not {vendor!r}")
        self.vendor = vendor
        self.requests: list[Recorded] = []
        self._steps: list[Step] = [Fail(500, message="no script")]
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"wire-{vendor}", daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return root if self.vendor == "anthropic" else root + "/v1"

    def script(self, *steps: Step) -> WireServer:
        with self._lock:
            self._steps = list(steps)
            self.requests.clear()
        return self

    def _next(self, recorded: Recorded) -> Step:
        with self._lock:
            self.requests.append(recorded)
            return self._steps.pop(0) if len(self._steps) > 1 else self._steps[0]

    def start(self) -> WireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                server._serve(self, recorded, server._next(recorded))

            def do_GET(self) -> None:
                server._send(self, 404, {"error": {"message": "not found", "type": "not_found"}})

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler, recorded: Recorded, step: Step) -> None:
        if isinstance(step, Hang):
            if self._stopping.wait(step.seconds):
                return
            step = step.then or Answer("{}")
        if isinstance(step, Raw):
            self._send_bytes(handler, step.status, step.body, step.content_type, {})
        elif isinstance(step, Fail):
            headers = {"retry-after": step.retry_after} if step.retry_after is not None else {}
            self._send(handler, step.status, error_body(self.vendor, step), headers)
        else:
            self._send(handler, 200, self._success(recorded, step))

    def _success(self, recorded: Recorded, step: Answer) -> dict[str, Any]:
        try:
            model = str(recorded.json.get("model", "wire-model"))
        except (ValueError, AttributeError):
            model = "wire-model"
        if self.vendor == "anthropic":
            return anthropic_body(step, model)
        if recorded.path.rstrip("/").endswith("/chat/completions"):
            return openai_chat_body(step, model)
        return openai_response_body(step, model)

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: Any,
              headers: dict[str, str] | None = None) -> None:
        self._send_bytes(handler, status, json.dumps(payload).encode(), "application/json", headers or {})

    @staticmethod
    def _send_bytes(handler: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str,
                    headers: dict[str, str]) -> None:
        try:
            handler.send_response(status)
            handler.send_header("content-type", ctype)
            handler.send_header("content-length", str(len(body)))
            handler.send_header("request-id", "req_wire")
            handler.send_header("x-request-id", "req_wire")
            for key, value in headers.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left
