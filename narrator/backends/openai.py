"""OpenAI Responses API through the official SDK (structured output via strict json_schema)."""

from __future__ import annotations

from typing import Any

from narrator.backends.base import Call, LLMBackend, Request


class OpenAIBackend(LLMBackend):
    """GPT models via `openai` 3.x (httpx2), Responses API, `store=False`."""

    name = "openai"
    default_model = "gpt-5-mini"
    key_env = "OPENAI_API_KEY"

    def _client(self) -> Any:
        import httpx2
        import openai

        s = self.settings
        return openai.OpenAI(api_key=s.api_key, base_url=s.base_url, max_retries=0,
                             timeout=httpx2.Timeout(s.timeout_s, connect=min(5.0, s.timeout_s)))

    def _retryable(self) -> tuple[type[BaseException], ...]:
        import openai

        return (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)

    def _call(self, request: Request) -> Call:
        resp = self.client.responses.create(
            model=self.model, instructions=request.system, input=request.user,
            text={"format": {"type": "json_schema", "name": request.schema_name, "schema": request.schema,
                             "strict": True}},
            max_output_tokens=self.settings.max_tokens, store=False,
        )
        u = resp.usage
        details = getattr(u, "input_tokens_details", None) if u else None
        usage = {"input_tokens": u.input_tokens if u else 0, "output_tokens": u.output_tokens if u else 0,
                 "total_tokens": u.total_tokens if u else 0,
                 "cached_tokens": (getattr(details, "cached_tokens", 0) or 0) if details else 0}
        problem = None if resp.status == "completed" else f"openai response status={resp.status}"
        return Call(resp.output_text, usage, resp.model, problem)
