"""engine.journeys' integer codes: states and outcome rules in the smallest integer type that holds them (_small)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.journey_arrays import NONE
from engine.journeys import _small

SMALL = {"int8_top": (127, np.int8), "int16_bottom": (128, np.int16), "int16_top": (32767, np.int16),
         "int32_bottom": (32768, np.int32), "int32_top": (2**31 - 1, np.int32), "int64": (2**31, np.int64),
         "only_none": (NONE, np.int8)}


@pytest.mark.parametrize(("top", "dtype"), SMALL.values(), ids=SMALL.keys())
def test_small_codes_keep_every_value(top: int, dtype: type) -> None:
    codes = np.array([NONE, 0, top, NONE], dtype=np.int64)
    small = _small(codes)
    assert small.dtype == dtype and small.tolist() == codes.tolist()


def test_no_codes() -> None:
    assert _small(np.zeros(0, dtype=np.int64)).dtype == np.int8
