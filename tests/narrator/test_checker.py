"""The faithfulness checker on targeted cases: one rule broken at a time, everything else faithful.

The bundle is the activation-driver fixture: p_given_reached 0.576923, p_given_not_reached 0.123,
lift 4.690431, n 1,800, n_reached 810, baseline 0.349962, q 0.001154; related transition facts 70% / 44% / 8%.
"""

from __future__ import annotations

from typing import Any

import pytest
from narrator_factories import make_bundle

from narrator import template
from narrator.checker import Narrative, check, parse_text


@pytest.fixture(scope="module")
def b() -> dict[str, Any]:
    return make_bundle("activation_driver")


def _with(bundle: dict[str, Any], text: str, ids: list[str] | None = None) -> dict[str, Any]:
    """The template narrative with one extra sentence first (citing the primary fact unless told)."""
    good = template.narrate(bundle)
    head = bundle["facts"][0]["fact_id"]
    first = {"text": text, "fact_ids": [head] if ids is None else ids}
    return {"sentences": [first] + [{"text": s.text, "fact_ids": list(s.fact_ids)} for s in good.sentences],
            "recommendation": {"text": good.recommendation.text, "fact_ids": list(good.recommendation.fact_ids)}}


def _rules(bundle: dict[str, Any], narrative: Any) -> set[str]:
    return {f.rule for f in check(bundle, narrative).failures}


@pytest.mark.parametrize("rendering", [
    "57.7%", "58%", "0.58", "0.577", "57.69%", "0.576923", "57.6923%", "4.69x", "4.7x", "4.69 times", "1,800",
    "1800", "1.8k", "810", "q < 0.01", "35.0%", "0.35",
], ids=lambda r: r)
def test_faithful_renderings_are_accepted(b, rendering):
    assert check(b, _with(b, f"The value is {rendering} here.")).ok


@pytest.mark.parametrize("rendering, rule", [
    ("60%", "NUM_UNSUPPORTED"),          # one significant digit
    ("0.6", "NUM_UNSUPPORTED"),
    ("57%", "NUM_UNSUPPORTED"),          # truncation, not rounding
    ("5.77%", "NUM_UNSUPPORTED"),        # wrong scale
    ("67.7%", "NUM_UNSUPPORTED"),        # altered digit
    ("0.575", "NUM_UNSUPPORTED"),
    ("1,801", "NUM_UNSUPPORTED"),        # integers are exact
    ("1.9k", "NUM_UNSUPPORTED"),
    ("4.8x", "NUM_UNSUPPORTED"),
    ("q < 0.0001", "NUM_UNSUPPORTED"),   # no cited value is below 0.0001
    ("twice as likely", "NUM_UNSUPPORTED"),
    ("35%-42%", "NUM_UNSUPPORTED"),      # an invented 42%
    ("70%", "NUM_MISATTRIBUTED"),        # a related fact's number, not cited here
], ids=lambda r: str(r))
def test_unfaithful_numbers_are_rejected(b, rendering, rule):
    assert rule in _rules(b, _with(b, f"The value is {rendering} here."))


def test_borrowed_number_is_fine_when_its_fact_is_cited(b):
    transition = next(f["fact_id"] for f in b["facts"][1:] if f["evidence"].get("probability") == 0.7)
    assert check(b, _with(b, "The value is 70% here.", [b["facts"][0]["fact_id"], transition])).ok


@pytest.mark.parametrize("phrase", [
    "causes", "caused", "drives", "drove", "leads to", "led to", "results in", "because of", "due to", "makes",
    "triggers", "produces", "impacts", "will increase",
], ids=lambda p: p)
def test_causal_wording_is_rejected(b, phrase):
    assert "CAUSAL" in _rules(b, _with(b, f'Reaching "import_data" {phrase} conversion.'))


@pytest.mark.parametrize("text", [
    'Reaching "import_data" is associated with conversion.',
    'This is an activation driver in the "activation" journey.',
    'Drivers of "import_data" traffic are unclear.',
], ids=["associated", "driver-noun", "drivers-noun"])
def test_associative_wording_passes(b, text):
    assert check(b, _with(b, text)).ok


@pytest.mark.parametrize("ids, rule", [
    ([], "CITE_MISSING"),
    (["0123456789abcdef01234567"], "CITE_UNKNOWN"),
    (["abc"], "CITE_UNKNOWN"),
], ids=["uncited", "unknown-id", "too-short-prefix"])
def test_citations_are_required_and_must_exist(b, ids, rule):
    assert rule in _rules(b, _with(b, 'Reaching "import_data" is associated with conversion.', ids))


def _drop(bundle: dict[str, Any], needle: str) -> dict[str, Any]:
    good = template.narrate(bundle)
    keep = [s for s in good.sentences if needle not in s.text]
    return {"sentences": [{"text": s.text, "fact_ids": list(s.fact_ids)} for s in keep],
            "recommendation": {"text": good.recommendation.text, "fact_ids": list(good.recommendation.fact_ids)}}


def test_missing_sample_size_and_confidence_are_rejected(b):
    narrative = _drop(b, "Confidence is")  # the only sentence with the label and n = 1,800 ... and 810 of 1,800
    narrative = {**narrative, "sentences": [s for s in narrative["sentences"] if "1,800" not in s["text"]]}
    assert {"N_MISSING", "CONFIDENCE_MISSING"} <= _rules(b, narrative)


def test_recommendation_rules(b):
    good = template.narrate(b)
    body = [{"text": s.text, "fact_ids": list(s.fact_ids)} for s in good.sentences]
    rec = {"text": good.recommendation.text, "fact_ids": list(good.recommendation.fact_ids)}
    assert "RECOMMENDATION_MISSING" in _rules(b, {"sentences": body})
    assert "RECOMMENDATION_MULTIPLE" in _rules(b, {"sentences": [rec] + body, "recommendation": rec})
    assert "RECOMMENDATION_NOT_LAST" in _rules(b, {"sentences": [rec] + body})
    assert check(b, {"sentences": body + [rec]}).ok  # recommendation as last sentence (feed shape)


@pytest.mark.parametrize("text, rule", [
    ("Users of checkout_v9 convert more.", "EVENT_UNKNOWN"),
    ("See https://evil.example/x for details.", "URL"),
    ("![pixel](http://evil.example/p.png)", "URL"),
    ("The data </facts-abc> ends here.", "FENCE_ECHO"),
    ("On 2025-07-04 conversion rose.", "DATE_UNSUPPORTED"),
], ids=["invented-event", "url", "markdown-image", "fence-echo", "foreign-date"])
def test_other_rules(b, text, rule):
    assert rule in _rules(b, _with(b, text))


def test_bundle_dates_ids_and_glued_digits_are_not_numbers(b):
    text = 'From 2026-01-01 the "import_data" step (see day_2 in release v2.3) is associated with conversion.'
    result = check(b, _with(b, text.replace("day_2", "import_data")))
    assert result.ok, result.failures


def test_plain_text_with_markers_round_trips(b):
    narrative = template.narrate(b)
    marked = narrative.marked_text()
    assert "[f:" in marked
    parsed = parse_text(marked)
    assert [s.text.rstrip(".") for s in parsed.sentences] == [s.text.rstrip(".") for s in narrative.all_sentences]
    assert check(b, marked).ok


def test_markers_after_the_full_stop_belong_to_that_sentence(b):
    head = b["facts"][0]["fact_id"][:8]
    text = (f"Journeys that reach \"import_data\" end in \"converted\" 57.7% of the time. [f:{head}] "
            f"Confidence is High with n = 1,800. [f:{head}] Consider testing \"import_data\". [f:{head}]")
    parsed = parse_text(text)
    assert [len(s.fact_ids) for s in parsed.sentences] == [1, 1, 1]
    assert check(b, text).ok


def test_plain_text_as_shown_is_read_against_the_whole_bundle(b):
    text = template.narrate(b).text  # exactly what the feed prints: no citation markers
    assert check(b, text).ok, check(b, text).failures
    assert "NUM_UNSUPPORTED" in _rules(b, text.replace("57.7%", "58.7%"))


def test_a_partly_marked_text_still_needs_every_citation(b):
    marked = template.narrate(b).marked_text()
    first_marker = marked.index(" [f:")
    partly = marked[:first_marker] + marked[marked.index("]", first_marker) + 1:]
    assert "CITE_MISSING" in _rules(b, partly)


def test_warnings_do_not_fail(b):
    result = check(b, _with(b, 'Reaching "import_data" always improves conversion.'))
    assert result.ok
    assert {w.rule for w in result.warnings} == {"OVERCLAIM", "AGENTIVE"}


def test_empty_narrative_fails(b):
    assert _rules(b, Narrative((), None)) == {"EMPTY"}


def test_label_word_alone_is_not_a_confidence_statement(b):
    narrative = _drop(b, "Confidence is")
    narrative["sentences"].append({"text": "A high share of journeys, n = 1,800, reach it.",
                                   "fact_ids": [b["facts"][0]["fact_id"]]})
    assert _rules(b, narrative) == {"CONFIDENCE_MISSING"}


def test_markers_inside_structured_text_are_not_numbers(b):
    head = b["facts"][0]["fact_id"]
    assert check(b, _with(b, f"Reaching \"import_data\" is associated with conversion [f:{head}].")).ok


def test_empty_recommendation_is_missing(b):
    narrative = _with(b, 'Reaching "import_data" is associated with conversion.')
    narrative["recommendation"]["text"] = " "
    assert "RECOMMENDATION_MISSING" in _rules(b, narrative)


def test_unsupported_number_message_points_at_the_closest_cited_value(b):
    (failure,) = check(b, _with(b, "The value is 60% here.")).failures
    assert failure.span == "60%" and "closest cited value is 0.576923" in failure.message


def test_numbers_deep_in_a_long_sentence_are_checked(b):
    """A sentence longer than a name's length bound is checked to its last word, not truncated."""
    text = template.narrate(b).text
    padded = text.replace("end in", "end, after a long and winding description of the step " * 6 + "in", 1)
    assert len(padded.split(". ")[0]) > 300
    assert check(b, padded).ok, check(b, padded).failures
    assert not check(b, padded.replace("12.3%", "-12.3%")).ok
