"""The composite interestingness score reproduces the paper's Table 1 to three decimals."""

from __future__ import annotations

import math

import pytest

from engine import scoring
from engine.config import DEFAULT_WEIGHTS

WEIGHTS = dict(DEFAULT_WEIGHTS)
TABLE1 = [  # id, p, n, effect, reach, actionable, seen, score
    ("F002", 0.001, 1800, 3.20, 0.45, True, 3, 0.845),
    ("F001", 0.003, 2400, 0.18, 0.71, True, 1, 0.736),
    ("F004", 0.008, 950, 0.22, 0.38, True, 5, 0.602),
    ("F003", 0.04, 310, 0.08, 0.08, False, 2, 0.252),
    ("F005", 0.12, 85, 0.11, 0.05, False, 7, 0.054),
]


@pytest.mark.parametrize("fid,p,n,effect,reach,actionable,seen,expected", TABLE1, ids=[r[0] for r in TABLE1])
def test_table1_scores(fid, p, n, effect, reach, actionable, seen, expected):
    parts = scoring.components(p_value=p, n=n, effect=effect, reach=reach, actionable=actionable, seen=seen)
    assert round(scoring.combine(parts, WEIGHTS), 3) == expected


def test_table1_order_is_the_papers():
    scores = {r[0]: scoring.combine(scoring.components(p_value=r[1], n=r[2], effect=r[3], reach=r[4],
                                                       actionable=r[5], seen=r[6]), WEIGHTS) for r in TABLE1}
    assert sorted(scores, key=scores.get, reverse=True) == ["F002", "F001", "F004", "F003", "F005"]


@pytest.mark.parametrize("p,n,expected", [
    (0.0, 1000, 1.0), (0.0, 100, 0.0), (0.5, 10_000, 0.5), (0.0, 50, 0.0), (0.2, 316, 0.8 * math.log10(3.16)),
], ids=["full", "n100-zero", "half", "small-n-clipped", "partial"])
def test_significance_penalises_small_samples(p, n, expected):
    assert scoring.significance(p, n) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("seen,expected", [(1, 1.0), (2, math.exp(-0.3)), (5, math.exp(-1.2))], ids=["new", "2nd", "5th"])
def test_novelty_decays(seen, expected):
    assert scoring.novelty(seen) == pytest.approx(expected)


def test_unknown_weight_refused():
    parts = scoring.components(p_value=0.01, n=500, effect=0.2, reach=0.1, actionable=True, seen=1)
    with pytest.raises(ValueError, match="unknown scoring weight"):
        scoring.combine(parts, {"significance": 1.0, "vibes": 0.5})
