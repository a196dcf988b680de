"""Keep pyarrow from importing pandas in a process that never uses it.

pyarrow looks for pandas on its first array conversion (`pa.array` of a numpy
array included), to recognise DataFrames and Series; where pandas is installed
that import costs 0.3-0.5 CPU-s, about a tenth of a daily incremental run on
1 M events. journeygraph hands pyarrow only numpy and Arrow data, so the
`journeygraph run` / `demo` executable switches pandas off for its process
(engine.app.cli) and the Spark engine, whose PySpark does use pandas, switches
it on again (engine.spark.session). pyarrow retries the import wherever it
really needs pandas, so switching it on later is enough.

Only the import is refused: a pandas already imported stays as it is.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType


class _Refuse(importlib.abc.MetaPathFinder):
    """A finder placed first on sys.meta_path that refuses pandas (and only pandas)."""

    def find_spec(self, fullname: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pandas":
            raise ModuleNotFoundError("pandas is switched off in this journeygraph process "
                                      "(engine.pandas_off.switch_on() switches it back)", name=fullname)
        return None


def switch_off() -> None:
    """Refuse `import pandas` in this process from now on (nothing if pandas is already imported)."""
    if "pandas" not in sys.modules and not any(isinstance(f, _Refuse) for f in sys.meta_path):
        sys.meta_path.insert(0, _Refuse())


def switch_on() -> None:
    """Let pandas be imported again."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _Refuse)]
