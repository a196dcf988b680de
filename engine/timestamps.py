"""Timestamps as they come: ISO 8601 with any offset, `YYYY-MM-DD HH:MM:SS[.ffffff]`, epoch numbers, or a
strptime format (day-first dates), as one SQL expression per column.

An epoch number's unit is decided once per column from the magnitudes of a
sample (`unit_of`), not per row, and reported: a column of seconds read as
milliseconds would land in January 1970 without a word. Thresholds: below 1e11
is seconds (1e11 s is the year 5138), below 1e14 milliseconds, below 1e17
microseconds, beyond that nanoseconds; any instant from 1973 to 5138 falls in
exactly one band. `auto` (no sample, e.g. SQL sources) applies the same bands
row by row. Epoch values beyond 1e16 microseconds (the year 2286) are
`bad_timestamp`, as before.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime

# Plausible event times: outside [TS_MIN, TS_MAX) a timestamp is bad_timestamp (years 1, 9999 and 10000
# parse, but no behavioural event happened then, and Python's datetime cannot hold every one of them)
TS_MIN, TS_MAX = "1900-01-01", "2200-01-01"
UNITS = ("s", "ms", "us", "ns")
UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds", "auto": "auto"}
_PER_MICRO = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}
_BANDS = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_MAX_MICROS = 1e16
_SLASH_DATE = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})(?:[ T](\d{1,2}:\d{2}(?::\d{2})?))?")


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def band(magnitude: float) -> str:
    """The epoch unit a number of this size is read in."""
    for limit, unit in _BANDS:
        if magnitude < limit:
            return unit
    return "ns"


def unit_of(values: Iterable[object]) -> str | None:
    """The epoch unit of a column from the median magnitude of its numeric values; None if none is numeric."""
    numbers = [abs(n) for n in map(_number, values) if n is not None and math.isfinite(n)]
    return band(statistics.median(numbers)) if numbers else None


def format_of(values: Iterable[object]) -> str | None:
    """A strptime format for slash dates (`dd/mm/YYYY[ HH:MM[:SS]]`, or month-first when no day exceeds 12)."""
    matches = [m for m in (_SLASH_DATE.match(v) for v in values if isinstance(v, str)) if m]
    if not matches:
        return None
    first_is_day = any(int(m.group(1)) > 12 for m in matches)
    second_is_day = any(int(m.group(2)) > 12 for m in matches)
    sep = next(c for c in matches[0].group(0) if c in "/.-")
    date = f"%d{sep}%m{sep}%Y" if first_is_day or not second_is_day else f"%m{sep}%d{sep}%Y"
    clock = matches[0].group(4)
    if clock is None:
        return date
    return f"{date} %H:%M:%S" if clock.count(":") == 2 else f"{date} %H:%M"


def timestamp_sql(col: str, unit: str = "auto", fmt: str | None = None) -> str:
    """`col` (text) -> naive UTC TIMESTAMP, else NULL: the format if given, then ISO 8601, then epoch in `unit`.

    epoch_us() of a TIMESTAMPTZ is zone-independent, so the result does not depend on the session's TimeZone.
    The number is named once, inside a lambda: written twice, DuckDB's common-subexpression pass would hoist
    the DOUBLE cast out of the lazy coalesce and run it on every row.
    """
    if unit == "auto":
        scale = "(CASE WHEN abs(d) < 1e11 THEN 1e6 WHEN abs(d) < 1e14 THEN 1e3 WHEN abs(d) < 1e17 THEN 1 ELSE 1e-3 END)"
    elif unit in _PER_MICRO:
        scale = repr(_PER_MICRO[unit])
    else:
        raise ValueError(f"timestamp unit {unit!r}: use one of auto, {', '.join(UNITS)}")
    epoch = f"lambda d: CASE WHEN abs(d * {scale}) < {_MAX_MICROS:.0f} THEN make_timestamp(CAST(d * {scale} AS BIGINT)) END"
    parts = []
    if fmt:
        quoted = "'" + fmt.replace("'", "''") + "'"
        parts.append(f"make_timestamp(epoch_us(try_strptime({col}, {quoted})::TIMESTAMPTZ))")
    parts.append(f"make_timestamp(epoch_us(try_cast({col} AS TIMESTAMPTZ)))")
    parts.append(f"list_transform([try_cast({col} AS DOUBLE)], {epoch})[1]")
    plausible = f"lambda t: CASE WHEN t >= TIMESTAMP '{TS_MIN}' AND t < TIMESTAMP '{TS_MAX}' THEN t END"
    return f"list_transform([coalesce({', '.join(parts)})], {plausible})[1]"


def out_of_range(first: datetime | None, last: datetime | None, now: datetime | None = None) -> bool:
    """True when every time falls before 2000 or after next year (a unit or format misread, most likely)."""
    if first is None or last is None:
        return False
    year = (now or datetime.now(UTC)).year
    return last < datetime(2000, 1, 1) or first >= datetime(year + 2, 1, 1)
