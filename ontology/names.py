"""User-controlled names inside entity ids, and how they are shown.

Edges and paths carry their states in the id: `edge:a->b`, `path:a>b>c`. A
state name may itself hold `>` (or `->`), so inside those ids a name's `%` and
`>` are percent-encoded (`%25`, `%3E`); names without them, nearly all, are
unchanged, so existing ids keep their values. `edge_id`, `path_id` build the
ids and `entity_states` reads the names back; nothing else may split them.

Names that differ only by invisible characters (zero-width, bidi controls,
C0/C1 controls, a BOM) are different states that print the same; `show_name`
makes those characters visible as `\\uXXXX` escapes, and `INVISIBLE_RANGES`
lets ingest warn about them (as a DuckDB/RE2 class, `invisible_re2_class`).
"""

from __future__ import annotations

import re
import unicodedata

INVISIBLE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F), (0x7F, 0x9F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x2069), (0xFEFF, 0xFEFF))
_INVISIBLE = re.compile("[" + "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi in INVISIBLE_RANGES) + "]")
_ENCODED = re.compile("%(25|3E)")


def invisible_re2_class() -> str:
    """INVISIBLE_RANGES as an RE2 character class (DuckDB's regexp functions)."""
    return "[" + "".join(f"\\x{{{lo:x}}}-\\x{{{hi:x}}}" for lo, hi in INVISIBLE_RANGES) + "]"


def show_name(name: str) -> str:
    """NFKC, with every invisible character written as a visible `\\uXXXX` escape."""
    return _INVISIBLE.sub(lambda m: f"\\u{ord(m.group()):04x}", unicodedata.normalize("NFKC", str(name)))


def _encode(name: str) -> str:
    return name.replace("%", "%25").replace(">", "%3E")


def _decode(part: str) -> str:
    return _ENCODED.sub(lambda m: "%" if m.group(1) == "25" else ">", part)


def edge_id(src: str, dst: str) -> str:
    return f"edge:{_encode(src)}->{_encode(dst)}"


def path_id(states: list[str] | tuple[str, ...]) -> str:
    return "path:" + ">".join(_encode(s) for s in states)


def entity_states(entity: str) -> list[str]:
    """State names inside an edge (`edge:a->b`) or a path (`path:a>b>c`); empty for other kinds.

    An encoded name holds no `>`, so every `>` separates; in an edge the `-` right before it is the arrow's.
    """
    kind, _, rest = entity.partition(":")
    if kind == "edge":
        head, sep, dst = rest.partition(">")
        parts = [head.removesuffix("-"), dst] if sep else [rest]
    elif kind == "path":
        parts = rest.split(">")
    else:
        return []
    return [_decode(p) for p in parts if p]
