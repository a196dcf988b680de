"""Property: for every finding type and any grounded bundle, the template narrative passes the checker,
and altering any one number in it makes the checker fail."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from narrator_factories import make_bundle, related_facts

from narrator import numbers, template
from narrator.checker import check
from narrator.grounding import grounding_issues
from ontology.vocabulary import FINDING_TYPES

NAMES = st.sampled_from([
    "import_data", "step 2", "day_3_return", "50% off page", "Checkout (v2.3)", "über-flow", "a", "x1",
    "pricing page. Next step", "2026-01-01 launch", "drives revenue", "conversion doubled",
])


@st.composite
def bundles(draw):
    ftype = draw(st.sampled_from(FINDING_TYPES))
    n = draw(st.integers(100, 2_000_000))
    k = draw(st.integers(30, n))
    a = draw(st.floats(0.02, 0.999, allow_nan=False))
    b = a * draw(st.floats(0.01, 0.95, allow_nan=False))
    scale = draw(st.floats(0.01, 400.0, allow_nan=False))
    label = draw(st.sampled_from(["High", "Medium", "Low"]))
    name = draw(NAMES)
    subject = f"state:{name}" if ftype in ("activation_driver", "necessary_for_conversion", "dropoff_point",
                                           "repeated_visit") else None
    facts = related_facts(name) if draw(st.booleans()) else []
    return make_bundle(ftype, facts=facts, n=n, a=a, b=b, k=k, scale=scale, label=label, subject=subject)


PROPERTY = settings(max_examples=120, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@PROPERTY
@given(bundles())
def test_template_output_passes_the_checker_for_every_finding_type(bundle):
    assert grounding_issues(bundle) == []
    narrative = template.narrate(bundle)
    result = check(bundle, narrative)
    assert result.ok, (narrative.text, result.failures)
    assert check(bundle, narrative.marked_text()).ok  # and in the plain-text citation format
    assert narrative.recommendation is not None and narrative.recommendation.text.split()[0] in (
        "Consider", "Investigate", "Review", "Compare")


@PROPERTY
@given(bundles(), st.data())
def test_altering_any_number_is_caught(bundle, data):
    narrative = template.narrate(bundle)
    sentences = list(narrative.sentences)
    index = data.draw(st.integers(0, len(sentences) - 1))
    sentence = sentences[index]
    masked_quotes = re.sub(r'"[^"]*"', lambda m: " " * len(m.group(0)), sentence.text)
    found = [n for n in numbers.extract_numbers(masked_quotes) if not n.spelled and not n.threshold]
    assume(found)
    target = data.draw(st.sampled_from(found))
    digits = [i for i in range(target.start, target.end) if sentence.text[i].isdigit()]
    pos = digits[-1]
    new_digit = str((int(sentence.text[pos]) + data.draw(st.integers(1, 8))) % 10)
    altered_text = sentence.text[:pos] + new_digit + sentence.text[pos + 1:]
    altered_number = numbers.extract_numbers(altered_text[target.start:target.end + 1])
    all_values = [v for f in bundle["facts"] for v in numbers.numeric_values(f)] + numbers.numeric_values(bundle["finding"])
    assume(altered_number and not numbers.matches_any(altered_number[0], all_values))
    sentences[index] = type(sentence)(altered_text, sentence.fact_ids)
    altered = type(narrative)(tuple(sentences), narrative.recommendation)
    rules = {f.rule for f in check(bundle, altered).failures}
    assert rules & {"NUM_UNSUPPORTED", "N_MISSING"}, (altered_text, rules)
