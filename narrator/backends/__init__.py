"""Narrator backends: `template` (default, offline) and one module per LLM provider, imported only when chosen."""

from __future__ import annotations

import os
from collections.abc import Mapping

from narrator.backends.base import LLMBackend, Settings
from ontology.errors import ProviderError
from ontology.plugins import Plugin, PluginRegistry

PROVIDERS = PluginRegistry("narrator", [
    Plugin("anthropic", "narrator.backends.anthropic:AnthropicBackend", "anthropic", "pip install 'anthropic>=1.0'"),
    Plugin("openai", "narrator.backends.openai:OpenAIBackend", "openai", "pip install 'openai>=3.0'"),
])


def backend_names() -> tuple[str, ...]:
    """`template` (built in, offline) and every LLM provider, installed extensions included."""
    return ("template", *PROVIDERS.names())


def make_backend(cfg: object, env: Mapping[str, str] | None = None, **overrides: float) -> LLMBackend | None:
    """The LLM backend named by a NarratorConfig, or None for `template`.

    The key comes only from the environment (ANTHROPIC_API_KEY / OPENAI_API_KEY);
    the provider SDK is imported only here, so the offline default never pays for it.
    """
    name = getattr(cfg, "backend", "template")
    if name == "template":
        return None
    plugin = PROVIDERS.get(name)
    if plugin is None:
        raise ValueError(f"narrator.backend {name!r} is unknown; choose one of {', '.join(backend_names())}")
    try:
        cls: type[LLMBackend] = plugin.load()
    except ImportError as exc:
        raise ProviderError(f"narrator.backend {exc}") from exc
    env = os.environ if env is None else env
    key = env.get(cls.key_env, "")
    if not key:
        raise ProviderError(f"narrator.backend is {name} but {cls.key_env} is not set; "
                            f"export {cls.key_env} or set narrator.backend: template")
    settings = Settings(
        api_key=key, model=getattr(cfg, "model", None) or cls.default_model, base_url=getattr(cfg, "base_url", None),
        timeout_s=float(getattr(cfg, "timeout_s", 60.0)), max_attempts=int(getattr(cfg, "max_attempts", 3)),
        max_tokens=int(getattr(cfg, "max_tokens", 1500)), **overrides)
    return cls(settings)
