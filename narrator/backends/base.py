"""What every LLM backend shares: request/reply shapes, the output schema, and retries.

The SDK clients are built with ``max_retries=0``; tenacity owns retries here,
on the provider's rate-limit, 5xx/overload, timeout and connection errors only,
with a bounded number of attempts, jittered exponential backoff and the
server's ``retry-after`` honoured (capped). Anything else (bad request, auth,
a reply outside the schema) is not retried: the narrator falls back to the
template and records why.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import jsonschema
import tenacity

from ontology.errors import NarrationError, ProviderError

log = logging.getLogger(__name__)

_SENTENCE = {
    "type": "object", "additionalProperties": False, "required": ["text", "fact_ids"],
    "properties": {"text": {"type": "string"}, "fact_ids": {"type": "array", "items": {"type": "string"}}},
}
NARRATIVE_SCHEMA: dict[str, Any] = {
    "type": "object", "additionalProperties": False, "required": ["sentences", "recommendation"],
    "properties": {"sentences": {"type": "array", "items": _SENTENCE}, "recommendation": _SENTENCE},
}


class OutputFormatError(NarrationError):
    """The provider answered, but not with JSON matching the narrative schema (or it stopped early).

    Carries what the failed call cost and returned, so the insight can record it.
    """

    def __init__(self, message: str, raw: str = "", usage: dict[str, int] | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.raw, self.usage, self.attempts = raw, dict(usage or {}), attempts


@dataclass(frozen=True)
class Call:
    """What one successful HTTP exchange gave: text, usage, model, and a stop problem if any."""

    raw: str
    usage: dict[str, int]
    model: str
    problem: str | None = None


@dataclass(frozen=True)
class Request:
    system: str
    user: str
    schema: dict[str, Any] = field(default_factory=lambda: NARRATIVE_SCHEMA)
    schema_name: str = "narrative"


@dataclass(frozen=True)
class Reply:
    data: dict[str, Any]
    raw: str
    usage: dict[str, int]
    model: str
    attempts: int


@dataclass(frozen=True)
class Settings:
    """Per-backend knobs, filled from NarratorConfig plus the key from the environment."""

    api_key: str
    model: str
    base_url: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 3
    max_tokens: int = 1500
    backoff_s: float = 0.5  # multiplier of the jittered exponential backoff
    max_wait_s: float = 20.0
    max_total_s: float = 120.0


def parse_reply(raw: str, schema: dict[str, Any]) -> dict[str, Any]:
    """JSON text -> dict, or OutputFormatError naming what was wrong."""
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise OutputFormatError(f"reply is not valid JSON ({exc.msg} at char {exc.pos}): {raw[:80]!r}") from exc
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        path = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise OutputFormatError(f"reply breaks the narrative schema at {path}: {exc.message}") from exc
    return data


class LLMBackend(ABC):
    """One provider behind one official SDK; subclasses implement `_client`, `_call`, `_retryable`."""

    name: ClassVar[str]
    default_model: ClassVar[str]
    key_env: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sdk_client: Any = None
        self._backoff = tenacity.wait_random_exponential(multiplier=settings.backoff_s, max=settings.max_wait_s)

    @property
    def model(self) -> str:
        return self.settings.model

    @property
    def client(self) -> Any:
        if self._sdk_client is None:
            self._sdk_client = self._client()
        return self._sdk_client

    @abstractmethod
    def _client(self) -> Any: ...

    @abstractmethod
    def _call(self, request: Request) -> Call:
        """One HTTP call through the SDK."""

    @abstractmethod
    def _retryable(self) -> tuple[type[BaseException], ...]: ...

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        response = getattr(exc, "response", None)
        try:
            return min(max(float(response.headers.get("retry-after")), 0.0), self.settings.max_wait_s)  # type: ignore[union-attr]
        except (AttributeError, TypeError, ValueError):
            return float(self._backoff(state))

    def complete(self, request: Request) -> Reply:
        """Call the provider with bounded retries; ProviderError when the budget is spent or the call is refused."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(self._retryable()), wait=self._wait,
            stop=tenacity.stop_after_attempt(self.settings.max_attempts)
            | tenacity.stop_after_delay(self.settings.max_total_s),
            reraise=True,
            before_sleep=lambda s: log.info("%s attempt %d failed: %s", self.name, s.attempt_number,
                                            type(s.outcome.exception()).__name__ if s.outcome else "?"),
        )
        try:
            for attempt in retrying:
                with attempt:
                    call = self._call(request)
        except Exception as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise ProviderError(self._describe(exc, attempts)) from exc
        attempts = retrying.statistics.get("attempt_number", 1)
        try:
            if call.problem:
                raise OutputFormatError(call.problem)
            data = parse_reply(call.raw, request.schema)
        except OutputFormatError as exc:
            raise OutputFormatError(str(exc), call.raw, call.usage, attempts) from exc
        return Reply(data, call.raw, call.usage, call.model, attempts)

    def _describe(self, exc: BaseException, attempts: int) -> str:
        status = getattr(exc, "status_code", None)
        what = f"HTTP {status}" if status else type(exc).__name__
        where = self.settings.base_url or "the default endpoint"
        return (f"{self.name} ({self.model} at {where}) failed with {what} after {attempts} attempt(s): "
                f"{str(exc)[:200]}; check {self.key_env}, narrator.model and narrator.base_url, "
                "or set narrator.backend: template")
