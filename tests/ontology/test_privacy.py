"""Evidence never carries user ids or properties outside the allowlist, in any store's write path."""

from __future__ import annotations

from typing import Any

import pytest

from ontology.errors import PrivacyError
from ontology.privacy import check_evidence
from ontology.store import open_store
from tests.ontology.conftest import make_fact

LEAKS = [
    ("user-id-key", {"user_id": "u_123"}, {}, "evidence.user_id would store a user identifier"),
    ("camel-case-key", {"anonymousId": "a1"}, {}, "evidence.anonymousId would store a user identifier"),
    ("nested-actor", {"top": [{"state": "x", "actor_id": "u9"}]}, {}, "evidence.top[0].actor_id"),
    ("email-value", {"example": "ana@example.com"}, {}, "evidence.example holds an email address"),
    ("uuid-value", {"sample": "3f2b8c1e-9d4a-4e2b-8f1a-2c3d4e5f6a7b"}, {}, "UUID-shaped id"),
    ("known-id-value", {"top_actor": "u_8842"}, {"forbidden": {"u_8842"}}, "evidence.top_actor holds a known user id"),
    ("known-id-in-list", {"states": ["a", "u_8842"]}, {"forbidden": {"u_8842"}}, "evidence.states[1] holds a known user id"),
    ("property-outside-allowlist", {"property": "company_name"}, {}, "names property 'company_name', outside privacy.allowed_properties (plan, platform)"),
    ("properties-list", {"properties": ["plan", "email_domain"]}, {}, "names property 'email_domain'"),
]


@pytest.mark.parametrize(("case", "extra", "opts", "expected"), LEAKS, ids=[c for c, _, _, _ in LEAKS])
def test_smuggled_identifiers_are_refused_with_their_path(case: str, extra: dict[str, Any], opts: dict[str, Any], expected: str) -> None:
    evidence = {"journey": "activation", **extra}
    with pytest.raises(PrivacyError) as info:
        check_evidence(evidence, ("plan", "platform"), opts.get("forbidden", ()))
    assert expected in str(info.value)


@pytest.mark.parametrize(
    "evidence",
    [{"property": "plan"}, {"properties": ["plan", "properties.platform"]}, {"snapshot": "0123456789abcdef01234567"},
     {"state": "import_data", "n": 10}],
    ids=["allowed-property", "allowed-properties-with-path", "content-hash-id", "plain-groups"],
)
def test_group_level_evidence_passes(evidence: dict[str, Any]) -> None:
    check_evidence(evidence, ("plan", "platform"), {"u_8842"})


def test_store_write_refuses_a_smuggled_user_id_and_stores_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store("embedded", None, tmp_path, allowed_properties=("plan",), forbidden_values={"u_8842"})
    try:
        good = make_fact()
        bad = make_fact("transitions_to", top_actor="u_8842")
        with pytest.raises(PrivacyError, match="known user id"):
            store.write([good, bad])
        with pytest.raises(PrivacyError, match="user identifier"):
            store.write([make_fact(user_id="u1")])
        assert store.count() == 0
        assert store.write([good, make_fact(property="plan")]) == 2
    finally:
        store.close()
