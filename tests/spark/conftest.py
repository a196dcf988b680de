"""One local[2] SparkSession for every Spark test (about 15-30 s and 1 GB to start, then shared).

The Spark test modules are marked `spark` (pytestmark) and skipped, with the reason, only when Java or pyspark (or the
pandas it needs for applyInArrow) is missing; CI installs journeygraph[spark] and has Java, so there
they run.
"""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

MISSING = [what for what, ok in (("java (a JRE 17+) on PATH", shutil.which("java") is not None),
                                 ("pyspark (pip install 'journeygraph[spark]')", importlib.util.find_spec("pyspark") is not None),
                                 ("pandas (pip install 'journeygraph[spark]')", importlib.util.find_spec("pandas") is not None))
           if not ok]


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """The shared session: engine.spark.session's local settings (shuffle partitions 2, driver memory 1g)."""
    if MISSING:
        pytest.skip("Spark tests need " + " and ".join(MISSING))
    from engine.spark.session import session

    spark = session()
    yield spark
    spark.stop()
