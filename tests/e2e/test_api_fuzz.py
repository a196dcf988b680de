"""Schema fuzzing of the HTTP API with schemathesis against the committed OpenAPI spec: no 500s."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from tests.e2e.conftest import ROOT, LiveServer

schema = schemathesis.openapi.from_path(str(ROOT / "docs" / "openapi.json"))


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_api_never_answers_500(case, live_api: LiveServer) -> None:  # type: ignore[no-untyped-def]
    response = case.call(base_url=live_api.url, timeout=60)
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text[:300]
