"""Number extraction and the matching rule shared by the template narrator and the checker."""

from __future__ import annotations

import pytest

from narrator.numbers import extract_numbers, fmt_pct, fmt_pvalue, fmt_seconds, matches


@pytest.mark.parametrize("text, expected", [
    ("57.7% of 1,200 users", ["57.7%", "1,200"]),
    ("day_2_return and error_500 and F12 and v2.3", []),
    ("lift 2.33x, or 2.33 times", ["2.33x", "2.33 times"]),
    ("took 2.50 hours then 45 seconds", ["2.50 hours", "45 seconds"]),
    ("q < 0.001", ["< 0.001"]),
    ("12 pp and 12 percentage points", ["12 pp", "12 percentage points"]),
    ("it doubled, twice, by half", ["doubled", "twice", "half"]),
    ("5 steps", ["5"]),
], ids=["percent-thousands", "glued-digits", "multiples", "durations", "threshold", "points", "spelled", "plain"])
def test_extraction(text, expected):
    assert [n.text for n in extract_numbers(text)] == expected


@pytest.mark.parametrize("written, value, ok", [
    ("57.7%", 0.576923, True), ("58%", 0.576923, True), ("0.58", 0.576923, True),
    ("60%", 0.576923, False), ("0.6", 0.576923, False), ("57%", 0.576923, False), ("5.77%", 0.576923, False),
    ("0.6", 0.6, True), ("5%", 0.05, True),
    ("1,200", 1200, True), ("1200", 1200, True), ("1.2k", 1200, True), ("1,201", 1200, False),
    ("1,200.4", 1200, False),
    ("2.50 hours", 9000.0, True), ("150 minutes", 9000.0, True), ("9,000 seconds", 9000.0, True),
    ("3 hours", 9000.0, False),
    ("12% lower", -0.12, True), ("< 0.001", 0.0004, True), ("< 0.002", 0.0004, False), ("< 0.001", 0.001, False),
    ("doubled", 2.0, True), ("doubled", 2.1, False),
], ids=lambda x: str(x))
def test_matching_rule(written, value, ok):
    (number,) = extract_numbers(written)
    assert matches(number, value) is ok


@pytest.mark.parametrize("value", [0.0, 1e-6, 0.000123, 0.0049, 0.05, 0.1, 0.576923, 0.999999, 1.0, 2.4])
def test_formatted_percentages_match_their_value(value):
    (number,) = extract_numbers(fmt_pct(value))
    assert matches(number, value)


@pytest.mark.parametrize("seconds", [0.0, 3.5, 59.0, 119.9, 3600.0, 9000.0, 86400.0 * 3.21, 1e7])
def test_formatted_durations_match_their_value(seconds):
    (number,) = extract_numbers(fmt_seconds(seconds))
    assert matches(number, seconds)


@pytest.mark.parametrize("p, text", [(0.0, "< 0.001"), (0.0004, "< 0.001"), (0.001, "0.0010"), (0.0412, "0.041")])
def test_pvalue_format(p, text):
    assert fmt_pvalue(p) == text
