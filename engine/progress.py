"""Progress bars on stderr for long work, silent when nobody is watching.

A bar helps a person at a terminal; in CI logs, pipes and tests it is noise,
so it is shown only when stderr is a TTY and JOURNEYGRAPH_NO_PROGRESS is
unset. Output never goes to stdout, which carries results (JSON, feeds).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def enabled() -> bool:
    """True when a progress bar would be seen by a person."""
    if os.environ.get("JOURNEYGRAPH_NO_PROGRESS"):
        return False
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar(total: int | None = None, desc: str = "", unit: str = "it", *, quiet: bool = False, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr (off when `quiet` or `enabled()` is False); use as a context manager."""
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=quiet or not enabled(),
                leave=False, dynamic_ncols=True, **kwargs)


def track(items: Iterable[T], total: int | None = None, desc: str = "", unit: str = "it") -> Iterator[T]:
    """Iterate over `items` with a bar."""
    with bar(total=total, desc=desc, unit=unit) as progress:
        for item in items:
            yield item
            progress.update(1)
