"""Anthropic Messages API through the official SDK (structured output via output_config json_schema)."""

from __future__ import annotations

from typing import Any

from narrator.backends.base import Call, LLMBackend, Request


class AnthropicBackend(LLMBackend):
    """Claude via `anthropic` 2.x (httpx2). No sampling knobs exist there; determinism comes from the checker."""

    name = "anthropic"
    default_model = "claude-sonnet-4-6"
    key_env = "ANTHROPIC_API_KEY"

    def _client(self) -> Any:
        import anthropic
        import httpx2

        s = self.settings
        return anthropic.Anthropic(api_key=s.api_key, base_url=s.base_url, max_retries=0,
                                   timeout=httpx2.Timeout(s.timeout_s, connect=min(5.0, s.timeout_s)))

    def _retryable(self) -> tuple[type[BaseException], ...]:
        import anthropic

        return (anthropic.RateLimitError, anthropic.InternalServerError, anthropic.APIConnectionError)

    def _call(self, request: Request) -> Call:
        msg = self.client.messages.create(
            model=self.model, max_tokens=self.settings.max_tokens,
            system=[{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
            messages=[{"role": "user", "content": request.user}],
            output_config={"format": {"type": "json_schema", "schema": request.schema}},
        )
        text = "".join(getattr(b, "text", "") for b in msg.content if b.type == "text")
        u = msg.usage
        usage = {"input_tokens": u.input_tokens, "output_tokens": u.output_tokens,
                 "cache_creation_input_tokens": u.cache_creation_input_tokens or 0,
                 "cache_read_input_tokens": u.cache_read_input_tokens or 0}
        problem = None if msg.stop_reason == "end_turn" else f"anthropic stopped with stop_reason={msg.stop_reason}"
        return Call(text, usage, msg.model, problem)
