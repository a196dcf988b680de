"""The ranked feed: merging across snapshots, deterministic order, renderers."""

from __future__ import annotations

import json
import re

import pytest

from detectors.runner import run_detectors
from detectors.synthetic import chain_payload
from engine.config import DEFAULT_WEIGHTS
from engine.feed import feed_item, rank
from engine.app.render import FORMATS, render
from engine.snapshot import Snapshot
from ontology.model import Finding
from ontology.validation import validate

from detector_builders import make_cfg
from test_planted_synthetic import BASE

WEEKS = [(f"2026-01-{d:02d}T00:00:00Z", f"2026-01-{d + 7:02d}T00:00:00Z") for d in (5, 12, 19)]


def _finding(window, snapshot_id, **kw):
    base = dict(type="activation_driver", detector="activation_driver@1", journey="activation",
                subject="state:import_data", predicate="is_activation_driver_for", object="outcome:converted",
                snapshot_id=snapshot_id, n=1800, effect=3.2, p_value=0.001, q_value=0.004, confidence=0.95,
                confidence_label="High", evidence={"journey": "activation"}, window=window, reach=0.45)
    base.update(kw)
    return Finding(**base)


def test_repeated_findings_merge_into_one_entry():
    periods = [_finding(w, f"p{i}") for i, w in enumerate(WEEKS)]
    everything = _finding(("2026-01-05T00:00:00Z", "2026-01-26T00:00:00Z"), "all", p_value=0.0005)
    entries = rank([*periods, everything], dict(DEFAULT_WEIGHTS))
    assert len(entries) == 1
    e = entries[0]
    assert e.finding.snapshot_id == "all"  # the all-data finding represents the key
    assert (e.seen, e.since) == (3, "2026-01-05T00:00:00Z")
    # no conversions-at-stake estimate: feed score 0, ordered by the composite; persisting costs no novelty
    assert e.score == 0.0
    assert e.components["composite"] == pytest.approx(0.3 * 0.9995 + 0.25 + 0.2 * 0.45 + 0.15 + 0.1, abs=1e-6)


def test_rank_orders_best_first_with_deterministic_ties():
    w = WEEKS[0]
    a = _finding(w, "s", subject="state:a")
    b = _finding(w, "s", subject="state:b")
    weak = _finding(w, "s", subject="state:c", p_value=0.2, n=90, actionable=False)
    entries = rank([weak, b, a], dict(DEFAULT_WEIGHTS))
    assert [e.finding.subject for e in entries] == ["state:a", "state:b", "state:c"]
    assert [e.rank for e in entries] == [1, 2, 3]
    assert rank([a, b, weak], dict(DEFAULT_WEIGHTS)) == entries


def _items():
    snap = Snapshot.from_payload(chain_payload(BASE, journeys=8000, start="sign_up"))
    cfg = make_cfg()
    run = run_detectors([snap], cfg)
    entries = rank(run.findings, cfg)
    narrative = {"text": "Journeys that reach import are more likely to convert.", "backend": "template",
                 "sentences": [{"text": "Journeys that reach import are more likely to convert.", "fact_ids": []}]}
    return snap, [feed_item(e, narrative, [run.facts[0].fact_id]) for e in entries]


def test_feed_items_follow_the_schema():
    _, items = _items()
    assert items
    for item in items:
        validate("feed_item", item)
        assert {"since", "seen", "n", "effect", "reach"} <= set(item)


def test_feed_item_accepts_a_whole_insight():
    _, items = _items()
    insight = {"insight_id": "ab" * 12, "narrative": items[0]["narrative"], "fact_ids": ["cd" * 12]}
    entry = rank(run_detectors([Snapshot.from_payload(chain_payload(BASE, journeys=8000, start="sign_up"))],
                               make_cfg()).findings, make_cfg())[0]
    item = feed_item(entry, insight, 1)
    assert (item["insight_id"], item["fact_ids"]) == ("ab" * 12, ["cd" * 12])


@pytest.mark.parametrize("fmt", FORMATS)
def test_renderers_are_byte_stable(fmt):
    snap, items = _items()
    kwargs = {"snapshot": snap} if fmt == "html" else {}
    assert render(items, fmt, **kwargs) == render(json.loads(json.dumps(items)), fmt, **kwargs)


def test_json_render_round_trips():
    _, items = _items()
    assert json.loads(render(items, "json")) == items


def test_html_is_self_contained_with_graph_and_charts():
    snap, items = _items()
    page = render(items, "html", snapshot=snap)
    urls = set(re.findall(r"(?:src|href)\s*=\s*\"([^\"]+)\"", page)) | set(re.findall(r"url\((?!#)", page))
    assert not urls  # no external request of any kind
    assert "http://www.w3.org/2000/svg" in page  # only the SVG namespace, never fetched
    assert page.count("<svg") == 3  # journey graph + two bar charts
    assert ">0.50</text>" in page  # import -> invite probability label on the graph
    assert "Removal effect" in page and "B[s, converted]" in page
    assert items[0]["finding"]["confidence_label"] in page


def test_html_removal_chart_draws_a_bootstrap_interval_per_removable_state():
    snap, items = _items()
    page = render(items, "html", snapshot=snap)
    removable = [s for s in snap.payload["states"] if s != snap.payload["start_state"]]
    assert page.count('class="interval"') == len(removable)
    assert "95% bootstrap intervals (200 replicates" in page
    assert page == render(items, "html", snapshot=snap)  # seeded from the snapshot id


def test_html_accepts_a_bare_payload():
    snap, items = _items()
    assert render(items, "html", snapshot=snap.payload) == render(items, "html", snapshot=snap)


def test_unknown_format_refused():
    with pytest.raises(ValueError, match="text, json, md, html"):
        render([], "pdf")


@pytest.mark.parametrize(("value", "shown"), [(0.0, "<1e-300"), (1e-12, "1.0e-12"), (0.004, "0.004"), (None, "–")],
                         ids=["underflow", "tiny", "plain", "missing"])
def test_p_values_in_text_never_show_as_zero(value, shown):
    from engine.app.render.common import pval

    assert pval(value) == shown
