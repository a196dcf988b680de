"""The one request fence: data sent to an LLM can never close its element or smuggle a name.

Both narration and ask send workspace data (state, segment and release names are user-controlled
strings) inside `<facts-NONCE> … </facts-NONCE>`. Every string is scrubbed of control and invisible
characters (`clean_name`), every `<`, `>` and `&` is JSON-escaped so no tag can open or close, and
the nonce is a hash of the escaped payload, so a payload cannot contain its own fence.
"""

from __future__ import annotations

import hashlib
from typing import Any

from narrator.bundle import clean_name
from ontology.model import canonical_json


def escape_data(text: str) -> str:
    """JSON-safe text that can never open or close a tag (the fence stays unbreakable)."""
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def scrub(obj: Any) -> Any:
    """Every string inside `obj` with control and invisible characters removed (names are user data)."""
    if isinstance(obj, str):
        return clean_name(obj)
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def fence(data: Any) -> tuple[str, str]:
    """(nonce, payload): `data` as scrubbed, escaped canonical JSON and the nonce that fences it."""
    payload = escape_data(canonical_json(scrub(data)))
    return hashlib.sha256(payload.encode()).hexdigest()[:16], payload
