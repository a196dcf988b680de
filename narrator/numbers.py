"""Numbers in narratives: one extraction grammar, one formatting policy, one matching rule.

The template narrator formats numbers with `fmt_*` and the faithfulness checker
reads them back with `extract_numbers` and `matches`; keeping all three in one
module is what guarantees the template output always passes the checker.

Matching rule (documented for `journeygraph verify`): a number ``r`` written
with ``d`` decimals in its own unit (plain, ``%``/``pp``, ``x``/``×``,
``k``/``M``, or a duration unit) matches a bundle value ``v`` when
- ``v`` is an integer count: ``r`` expressed in the bundle's unit equals ``v``
  exactly (``1200`` ↔ ``1,200`` ↔ ``1.2k``);
- otherwise ``|r − v/scale| ≤ ½·10^−d`` (a correct rounding at ``r``'s own
  precision) and either ``r`` equals ``v/scale`` exactly or ``r`` keeps at least
  two significant digits. So 0.576923 may read 0.577, 0.58, 57.7% or 58%, never
  60% or 0.6; a lift 2.33 may read 2.33x;
- signs may be carried by words (−0.12 ↔ "12% lower"), so ``|r|`` is compared
  with ``|v|``; an explicit sign is kept on the TextNumber and narrator.attribution
  checks it, and the words, against the field's sign;
- ``< r`` (a reporting threshold such as ``p < 0.001``) matches when ``r`` is a
  power of ten and ``0 ≤ v < r``.
Spelled-out multiples (twice, doubled, half, …) are numbers too.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

EPS = 1e-9

_UNITS: tuple[tuple[str, float], ...] = (
    ("percentage points", 0.01), ("percent", 0.01), ("pp", 0.01), ("%", 0.01),
    ("seconds", 1.0), ("second", 1.0), ("sec", 1.0), ("s", 1.0),
    ("minutes", 60.0), ("minute", 60.0), ("min", 60.0),
    ("hours", 3600.0), ("hour", 3600.0), ("h", 3600.0),
    ("days", 86400.0), ("day", 86400.0),
    ("times", 1.0), ("x", 1.0), ("×", 1.0), ("k", 1000.0), ("M", 1_000_000.0),
)
_UNIT_SCALE = dict(_UNITS)
_UNIT_ALT = "|".join(re.escape(u) for u, _ in _UNITS)
NUMBER_RE = re.compile(
    r"(?<![\w.])(?P<lt>[<≤]\s*)?(?P<sign>[-−+])?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?"
    rf"(?:\s?(?P<unit>{_UNIT_ALT}))?(?![\w])"
)
SPELLED: dict[str, float] = {
    "half": 0.5, "halved": 0.5, "halves": 0.5, "twice": 2.0, "double": 2.0, "doubled": 2.0,
    "doubles": 2.0, "doubling": 2.0, "thrice": 3.0, "triple": 3.0, "tripled": 3.0, "triples": 3.0,
    "quadruple": 4.0, "quadrupled": 4.0, "tenfold": 10.0, "twofold": 2.0, "threefold": 3.0,
}
_SPELLED_RE = re.compile(r"\b(" + "|".join(sorted(SPELLED, key=len, reverse=True)) + r")\b", re.IGNORECASE)
DATE_RE = re.compile(r"(?<![\w])\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?Z?)?(?![\w])")


@dataclass(frozen=True)
class TextNumber:
    """One number as written in a narrative, with where it sits."""

    text: str
    start: int
    end: int
    value: float  # as written, in its own unit, sign dropped
    decimals: int
    sig_digits: int
    scale: float  # multiply value by scale to get bundle units
    threshold: bool = False  # written as "< r"
    spelled: bool = False
    sign: int = 0  # -1 or +1 when written with an explicit sign, else 0


def normalise(text: str) -> str:
    """NFKC plus the minus sign folded to ASCII, so extraction sees one alphabet."""
    return unicodedata.normalize("NFKC", text).replace("−", "-")


def _sig_digits(digits: str) -> int:
    stripped = digits.replace(",", "").replace(".", "").lstrip("0")
    return len(stripped) if stripped else 1


def extract_numbers(text: str) -> list[TextNumber]:
    """Every number a reader would see, in order; digits glued to words (`day_2`, `v2.3`) are not numbers."""
    found: list[TextNumber] = []
    for m in NUMBER_RE.finditer(text):
        num = m.group("num")
        mantissa = num.replace(",", "")
        value = abs(float(mantissa + (m.group("exp") or "")))
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        if m.group("exp"):
            decimals -= int(m.group("exp")[1:])
        unit = m.group("unit")
        scale = _UNIT_SCALE.get(unit, 1.0) if unit else 1.0
        sign = {"-": -1, "−": -1, "+": 1}.get(m.group("sign") or "", 0)
        found.append(TextNumber(m.group(0).strip(), m.start(), m.end(), value, decimals,
                                _sig_digits(num), scale, threshold=bool(m.group("lt")), sign=sign))
    for m in _SPELLED_RE.finditer(text):
        found.append(TextNumber(m.group(0), m.start(), m.end(), SPELLED[m.group(1).lower()], 0, 9, 1.0, spelled=True))
    return sorted(found, key=lambda n: n.start)


def _is_power_of_ten(x: float) -> bool:
    return x > 0 and abs(math.log10(x) - round(math.log10(x))) < 1e-9


def matches(number: TextNumber, value: float | int) -> bool:
    """True when the written number is a faithful rendering of one bundle value (rule in the module doc)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return False
    target = abs(float(value))
    if number.threshold:
        limit = number.value * number.scale
        return _is_power_of_ten(limit) and 0.0 <= float(value) < limit
    if number.spelled:
        return abs(number.value - target) <= EPS
    if isinstance(value, int):
        return abs(number.value * number.scale - target) <= EPS * max(1.0, target)
    in_unit = target / number.scale
    tolerance = 0.5 * 10.0 ** (-number.decimals) + EPS * max(1.0, in_unit)
    if abs(number.value - in_unit) > tolerance:
        return False
    exact = abs(number.value - in_unit) <= EPS * max(1.0, in_unit)
    return exact or number.sig_digits >= 2


def matches_any(number: TextNumber, values: Iterable[float | int]) -> bool:
    return any(matches(number, v) for v in values)


def numeric_values(obj: object) -> list[float | int]:
    """Every number inside a JSON-like value (bools excluded), depth first."""
    out: list[float | int] = []
    if isinstance(obj, bool) or obj is None:
        return out
    if isinstance(obj, (int, float)):
        out.append(obj)
    elif isinstance(obj, dict):
        for key in sorted(obj):
            out.extend(numeric_values(obj[key]))
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            out.extend(numeric_values(item))
    return out


# ---- formatting (the template narrator's side of the contract) ------------------------------

def _decimals_for(x: float, sig: int) -> int:
    if x == 0:
        return 0
    return max(0, sig - 1 - math.floor(math.log10(abs(x))))


def fmt_sig(x: float, sig: int = 3) -> str:
    """A plain decimal with `sig` significant digits (never scientific notation)."""
    x = abs(float(x))
    decimals = min(_decimals_for(x, sig), 9)
    return f"{x:,.{decimals}f}"


def fmt_count(n: float | int) -> str:
    """Counts exactly, with thousands separators."""
    return f"{int(round(float(n))):,}"


def fmt_pct(p: float, sig: int = 3) -> str:
    """A probability or share as a percentage with at least two significant digits."""
    pct = abs(float(p)) * 100.0
    if pct == 0:
        return "0%"
    if pct == int(pct) and pct >= 10:
        return f"{int(pct)}%"
    return fmt_sig(pct, max(sig, 2)) + "%"


def fmt_ratio(x: float) -> str:
    """A lift or multiple: 2.33x."""
    return fmt_sig(x, 3) + "x"


def fmt_pvalue(p: float) -> str:
    """p and q values: two significant digits, or a power-of-ten threshold below 0.001."""
    if float(p) < 0.001:
        return "< 0.001"
    return fmt_sig(p, 2)


def fmt_seconds(s: float) -> str:
    """Durations in the largest unit that keeps the number readable (the checker reads units back)."""
    s = abs(float(s))
    for unit, size in (("days", 86400.0), ("hours", 3600.0), ("minutes", 60.0)):
        if s >= 2 * size:
            return f"{fmt_sig(s / size, 3)} {unit}"
    return f"{fmt_sig(s, 3)} seconds"
