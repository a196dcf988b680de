"""Shared fixtures for the narrator tests: wire servers (one per vendor per module) and SDK-backed backends."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from narrator_factories import make_bundle  # noqa: E402
from wire_servers import WireServer  # noqa: E402

from narrator import template  # noqa: E402
from narrator.backends.base import LLMBackend, Settings  # noqa: E402

VENDORS = ("anthropic", "openai")


@pytest.fixture(scope="module", params=VENDORS)
def server(request: pytest.FixtureRequest) -> Iterator[WireServer]:
    with WireServer(request.param) as srv:
        yield srv


@pytest.fixture
def make_llm(server: WireServer) -> Callable[..., LLMBackend]:
    """A real-SDK backend aimed at the module's wire server; fast backoff, small timeouts."""

    def build(timeout_s: float = 5.0, max_attempts: int = 3) -> LLMBackend:
        from narrator.backends.anthropic import AnthropicBackend
        from narrator.backends.openai import OpenAIBackend

        cls = AnthropicBackend if server.vendor == "anthropic" else OpenAIBackend
        return cls(Settings(api_key="test-key", model=f"{server.vendor}-test-model", base_url=server.base_url,
                            timeout_s=timeout_s, max_attempts=max_attempts, max_tokens=700,
                            backoff_s=0.01, max_wait_s=0.05))

    return build


def structured(narrative: Any) -> dict[str, Any]:
    """The JSON an LLM would return for a Narrative."""
    return {"sentences": [{"text": s.text, "fact_ids": list(s.fact_ids)} for s in narrative.sentences],
            "recommendation": {"text": narrative.recommendation.text,
                               "fact_ids": list(narrative.recommendation.fact_ids)}}


@pytest.fixture(scope="session")
def bundle() -> dict[str, Any]:
    return make_bundle("activation_driver")


@pytest.fixture(scope="session")
def good_json(bundle: dict[str, Any]) -> str:
    """A faithful LLM answer (the template's sentences, reworded by nobody)."""
    return json.dumps(structured(template.narrate(bundle)))
