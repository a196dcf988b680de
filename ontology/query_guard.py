"""Limits on analysts' queries (`journeygraph query`): no federation, no file access, bounded time and rows.

The query text is checked with its string literals, IRIs and comments blanked
out, so a keyword inside a literal is not refused and one hidden behind a
comment is still seen. SPARQL's ``SERVICE`` (federation: the store would make
outbound requests) is refused; so are Cypher's ``LOAD CSV`` (reads files and
URLs the server can reach) and every procedure call but a few read-only
catalogue ones (``apoc.load.*``, ``dbms.*`` and friends reach files, the
network or the server's settings). `run_with_deadline` bounds the wall time of
a query evaluated in native code that cannot be interrupted: the caller gets
an error when the deadline passes (the abandoned evaluation runs on in its
daemon thread until it ends; the CLI exits).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ontology.errors import StoreError

T = TypeVar("T")

TIMEOUT_S = 30.0  # wall time of one query
MAX_ROWS = 10_000  # rows returned by one query; more are cut off with a warning

_SPARQL_BLANKS = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|\'\'\'(?:[^\'\\]|\\.|\'(?!\'\'))*\'\'\''
                            r'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|<[^<>"{}|^`\\\s]*>|#[^\n]*')
_SPARQL_REFUSED = re.compile(r"(?<![\w:])SERVICE(?![\w:])", re.IGNORECASE)
_CYPHER_BLANKS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`|//[^\n]*|/\*.*?\*/', re.DOTALL)
_CYPHER_LOAD = re.compile(r"\bLOAD\s+CSV\b", re.IGNORECASE)
_CYPHER_CALL = re.compile(r"\bCALL\s+([A-Za-z_][\w.]*)", re.IGNORECASE)
_CYPHER_NAMESPACES = re.compile(r"\b(apoc|dbms|gds|n10s|genai|db\.create|db\.index)\s*\.", re.IGNORECASE)
CYPHER_PROCEDURES = frozenset({"db.labels", "db.relationshiptypes", "db.propertykeys", "db.schema.visualization",
                               "db.schema.nodetypeproperties", "db.schema.reltypeproperties"})


def _blank(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(" ", text)


def check_sparql(query: str) -> None:
    """Refuse federated SPARQL (SERVICE): the query runs on the local fact store only."""
    if _SPARQL_REFUSED.search(_blank(_SPARQL_BLANKS, query)):
        raise StoreError("SPARQL SERVICE (federated query) is refused: `query --sparql` reads the local fact store "
                         "only; drop the SERVICE clause")


def check_cypher(query: str) -> None:
    """Refuse Cypher that reads files or URLs (LOAD CSV) or calls procedures outside a read-only catalogue list."""
    text = _blank(_CYPHER_BLANKS, query)
    if _CYPHER_LOAD.search(text):
        raise StoreError("Cypher LOAD CSV is refused: `query --cypher` reads the fact graph only, not files or URLs")
    namespace = _CYPHER_NAMESPACES.search(text)
    if namespace:
        raise StoreError(f"Cypher procedures and functions under {namespace.group(1)}. are refused: they can reach "
                         "files, the network or server settings; `query --cypher` reads the fact graph only")
    for call in _CYPHER_CALL.finditer(text):
        if call.group(1).lower() not in CYPHER_PROCEDURES:
            raise StoreError(f"Cypher CALL {call.group(1)} is refused; `query --cypher` allows CALL only for "
                             f"{', '.join(sorted(CYPHER_PROCEDURES))} (or a subquery CALL {{ … }})")


def run_with_deadline(work: Callable[[], T], timeout_s: float, what: str) -> T:
    """`work()` on a daemon thread; StoreError if it has not finished after `timeout_s` seconds."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="journeygraph-query", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise StoreError(f"{what} did not finish within {timeout_s:g} s and was abandoned; narrow the query "
                         "(fewer unbound patterns, a LIMIT)")
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def take(rows: Iterable[T], max_rows: int, warn: Callable[[str], None]) -> list[T]:
    """At most `max_rows` of `rows`; says so through `warn` when more were left out."""
    out: list[T] = []
    for row in rows:
        if len(out) == max_rows:
            warn(f"query result cut off at {max_rows} rows; add a LIMIT or narrow the query")
            break
        out.append(row)
    return out
