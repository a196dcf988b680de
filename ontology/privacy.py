"""Privacy guard on evidence: facts describe groups of journeys, never people.

Evidence is refused (PrivacyError, naming the JSON path) when it holds
- a key that names a person identifier (user_id, actor_id, anonymous_id, email, …),
- a string that looks like an email address or a UUID (the usual shape of user ids),
- a string in `forbidden_values` (ids the caller knows are user ids, e.g. the run's actors),
- a `property` / `properties` entry naming an event property outside `privacy.allowed_properties`.
Fact and snapshot ids are 24-hex content hashes, never UUIDs, so they pass.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from functools import lru_cache
from typing import Any

from ontology.errors import PrivacyError

#: Evidence keys that always name a person (compared lower-case, without - and _).
IDENTIFIER_KEYS: frozenset[str] = frozenset({
    "userid", "actorid", "anonymousid", "email", "emailaddress", "userids", "actorids",
    "anonymousids", "emails", "deviceid", "ipaddress", "ip", "phone", "phonenumber", "username",
})
#: Evidence keys whose values name event properties and so must be on the allowlist.
PROPERTY_KEYS: frozenset[str] = frozenset({"property", "properties"})

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@lru_cache(maxsize=4096)
def _norm(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def check_evidence(
    evidence: Any,
    allowed_properties: Collection[str] = (),
    forbidden_values: Collection[str] = (),
    *,
    where: str = "evidence",
) -> None:
    """Walk the evidence once; raise PrivacyError at the first leak, naming its path.

    Runs on every fact a store writes, so the walk skips numbers at once and
    builds a JSON path only for containers and on error.
    """
    allowed = allowed_properties if isinstance(allowed_properties, frozenset) else frozenset(allowed_properties)
    _walk(evidence, "evidence", allowed, forbidden_values, where)


def _walk(value: Any, path: str, allowed: frozenset[str], forbidden: Collection[str], where: str) -> None:
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        if isinstance(value, str):
            _check_string(value, path, forbidden, where)
        return
    for key, item in items:
        child = f"{path}[{key}]" if type(key) is int else f"{path}.{key}"
        if type(key) is str:
            if _norm(key) in IDENTIFIER_KEYS:
                raise PrivacyError(f"{where}: {child} would store a user identifier; evidence must describe groups, drop the key")
            if key in PROPERTY_KEYS:
                _check_properties(item, child, allowed, where)
        kind = type(item)
        if kind is str:
            _check_string(item, child, forbidden, where)
        elif kind is not int and kind is not float and kind is not bool and item is not None:
            _walk(item, child, allowed, forbidden, where)


def _check_string(value: str, path: str, forbidden: Collection[str], where: str) -> None:
    if value in forbidden:
        raise PrivacyError(f"{where}: {path} holds a known user id; evidence must never name an actor")
    if _EMAIL.search(value):
        raise PrivacyError(f"{where}: {path} holds an email address; evidence must never name a person")
    if _UUID.search(value):
        raise PrivacyError(f"{where}: {path} holds a UUID-shaped id (a user id?); evidence must never name an actor")


def _check_properties(item: Any, path: str, allowed: frozenset[str], where: str) -> None:
    names = [item] if isinstance(item, str) else list(item) if isinstance(item, (list, tuple, dict)) else []
    for name in names:
        bare = name.removeprefix("properties.") if isinstance(name, str) else name
        if bare not in allowed:
            shown = ", ".join(sorted(allowed)) or "nothing"
            raise PrivacyError(
                f"{where}: {path} names property {name!r}, outside privacy.allowed_properties ({shown}); "
                f"add it to privacy.allowed_properties in journeygraph.yaml or drop it from the evidence"
            )
