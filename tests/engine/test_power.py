"""engine.power: the minimum detectable change is where the two-proportion test reaches 80 % power."""

from __future__ import annotations

import numpy as np
import pytest

from engine.power import minimum_detectable_change, power_of


@pytest.mark.parametrize(("p1", "n1", "n2"), [(0.2, 1000, 1000), (0.33, 700, 150), (0.05, 5000, 400), (0.9, 300, 300)])
def test_power_at_the_mde_is_the_target_in_the_binding_direction(p1, n1, n2):
    mde = float(minimum_detectable_change(p1, n1, n2, 0.05)[0])
    powers = [power_of(p1, n1, p1 + s * mde, n2, 0.05) for s in (1, -1) if 0 <= p1 + s * mde <= 1]
    assert min(powers) == pytest.approx(0.8, abs=1e-6)  # the harder direction sits exactly at the target
    assert all(p >= 0.8 - 1e-6 for p in powers)
    assert power_of(p1, n1, min(1.0, p1 + 0.5 * mde), n2, 0.05) < 0.8


def test_more_data_detects_smaller_changes_and_empty_groups_detect_nothing():
    mde = minimum_detectable_change(0.3, [100, 1000, 10000], [100, 1000, 10000], 0.05)
    assert mde[0] > mde[1] > mde[2] > 0
    assert np.isnan(minimum_detectable_change(0.3, 0, 100, 0.05)[0])
    assert minimum_detectable_change(0.3, 1000, 1000, 0.01)[0] > minimum_detectable_change(0.3, 1000, 1000, 0.05)[0]
