"""The drop-off moments do not depend on how many threads the BLAS library runs (same bytes on any machine)."""

import os
import subprocess
import sys

SCRIPT = """
import numpy as np
from engine.loss_estimates import _dot
x = np.random.default_rng(1).random(1_500_000) * 7
print(repr(_dot(x, x)))
"""


def _dot_with_blas_threads(n: int) -> str:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(n), OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True).stdout


def test_moment_sums_equal_with_one_and_two_blas_threads():
    # x @ x gave 24499523.15428191 with one OpenBLAS thread and ...195 with two
    assert _dot_with_blas_threads(1) == _dot_with_blas_threads(2)
