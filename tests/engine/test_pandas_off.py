"""engine.pandas_off: pyarrow runs without importing pandas, and pandas comes back when switched on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import DEMO_CONFIG, ROOT, _env

pytest.importorskip("pandas")  # where pandas is not installed there is nothing to switch off

PROBE = """
import sys
from engine import pandas_off
pandas_off.switch_off()
import numpy as np, pyarrow as pa
table = pa.table({"x": pa.array(np.arange(3))})  # pyarrow's first conversions look for pandas
assert "pandas" not in sys.modules, "pyarrow imported pandas"
try:
    import pandas
except ModuleNotFoundError:
    pass
else:
    raise AssertionError("pandas imported while switched off")
pandas_off.switch_on()
frame = table.to_pandas()  # pyarrow retries the import where it needs pandas
assert list(frame["x"]) == [0, 1, 2]
print("ok")
"""


def test_switched_off_pyarrow_skips_pandas_and_switched_on_it_works_again() -> None:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_the_executable_runs_the_demo_without_importing_pandas(tmp_path: Path) -> None:
    """`journeygraph run` (python -m engine.app.cli, as console_main) never imports pandas: -X importtime lists
    every module the process imported (and the refused attempt as a bare `pandas` line: none of its modules)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "engine.app.cli", "run", "-c", str(DEMO_CONFIG),
                           "-w", str(tmp_path / "ws"), "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "pyarrow" in imported and "duckdb" in imported  # the probe sees the imports at all
    assert not {m for m in imported if m == "pandas" or m.startswith("pandas.")} - {"pandas"}, "pandas was imported"
