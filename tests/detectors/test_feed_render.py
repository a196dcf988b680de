"""The ranked feed: merging across snapshots, deterministic order, renderers."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from detector_builders import make_cfg
from test_planted_synthetic import BASE

from detectors.runner import run_detectors
from detectors.synthetic import chain_payload
from engine.app.render import FORMATS, render
from engine.config import DEFAULT_WEIGHTS
from engine.feed import feed_item, rank
from engine.snapshot import Snapshot
from ontology.model import Finding
from ontology.validation import validate

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
    assert 'class="label">50%</text>' in page  # import -> invite: half the moves out of import, on the graph
    assert "Chance of ending in &quot;converted&quot; from each step" in page
    assert "How much ending in &quot;converted&quot; depends on each step (removal effect)" in page
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


# --- labels a PM can read: every item names its measure and unit ----------------------------------

TYPED_EVIDENCE = {  # type -> (evidence, words its stats line must carry)
    "activation_driver": ({"lift": 2.6154, "p_given_reached": 0.442, "p_given_not_reached": 0.169}, "lift 2.62x (conversion 44.2% when reached, 16.9% when skipped)"),
    "necessary_for_conversion": ({"p_given_reached": 0.31, "p_given_not_reached": 0.0}, "conversion 31% when reached, 0% when skipped"),
    "dropoff_point": ({"exit_probability": 0.55, "baseline_exit": 0.13, "loss_share": 0.252}, "exit rate 55.0% of moves (13% from other states)"),
    "dropoff_cluster": ({"exit_probability": 0.4, "baseline_exit": 0.1, "loss_share": 0.3}, "exit rate 40% of moves (10% from other states)"),
    "regression": ({"p_before": 0.335, "p_after": 0.04, "delta": -0.295, "relative_change": -0.8806}, "change -29.5 percentage points (33.5% → 4.00%)"),
    "segment_divergence": ({"jsd": 0.1234, "state": "feature_used"}, "Jensen-Shannon divergence 0.123"),
    "repeated_visit": ({"return_probability": 0.689, "visits_mean": 3.22, "p_convert_repeat": 0.23, "p_convert_single": 0.31},
                       "mean 3.22 visits (conversion 23% when repeated, 31% when once)"),
    "fast_path": ({"quality": 3.46, "conversion_rate": 0.63, "time_ratio": 0.71}, "path quality 3.46 (1 = typical; conversion 63%)"),
    "slow_path": ({"time_ratio": 2.5, "outcome_class": "lost", "conversion_rate": 0.0}, "time × steps 2.50× the typical lost"),
}


def _typed_item(ftype, evidence, rank=1):
    finding = {"type": ftype, "detector": f"{ftype}@1", "subject": "state:a", "predicate": "p", "object": "outcome:converted",
               "confidence_label": "High", "confidence": 0.9, "finding_id": "f" * 24, "snapshot_id": "s" * 24,
               "n": 900, "effect": 0.4321, "reach": 0.3, "p_value": 1e-6, "q_value": 1e-5, "evidence": evidence}
    return {"finding": finding, "rank": rank, "score": 0.5, "insight_id": f"{rank:024d}", "n": 900, "effect": 0.4321,
            "reach": 0.3, "since": "2026-01-05T00:00:00Z", "seen": 1, "periods": 3}


def test_every_finding_type_has_a_named_measure():
    from narrator.kinds import registry
    from ontology.vocabulary import FINDING_TYPES

    assert set(FINDING_TYPES) <= set(registry().findings) and set(TYPED_EVIDENCE) == set(FINDING_TYPES)


@pytest.mark.parametrize("fmt", ["text", "md", "html"])
def test_no_rendered_effect_is_unlabelled(fmt):
    typed = [_typed_item(t, ev, i + 1) for i, (t, (ev, _)) in enumerate(sorted(TYPED_EVIDENCE.items()))]
    _, real = _items()
    page = render(typed + real, fmt)
    assert "effect=" not in page and "0.432" not in page  # the bare effect number never shows
    for _, words in TYPED_EVIDENCE.values():
        assert (words if fmt != "html" else words.replace("'", "&#x27;")) in page


def test_segment_reach_difference_says_points():
    from engine.app.render.common import measure_text

    item = _typed_item("segment_divergence", {"reach_segment": 0.201, "reach_rest": 0.0349, "difference": 0.1661})
    assert measure_text(item) == ("reach difference +16.6 percentage points (20.1% of journeys in the segment, "
                                  "3.49% elsewhere)")
    outcome = _typed_item("segment_divergence", {"reach_segment": 0.201, "reach_rest": 0.0349, "difference": 0.1661,
                                                 "kind": "outcome_rate_difference"})
    assert measure_text(outcome).startswith("outcome-rate difference +16.6 percentage points")


# --- the journey graph: fits a laptop, no label over another label or a box ------------------------

def _random_payload(states=30, seed=7):
    rng = np.random.default_rng(seed)
    names = [f"step_{i:02d}_{'x' * int(rng.integers(0, 14))}" for i in range(states)]
    transitions = []
    for i, src in enumerate(names):
        targets = rng.choice([*names[:i], *names[i + 1:], "converted", "dropped"], size=5, replace=False)
        transitions += [{"from": src, "to": str(t), "count": int(rng.integers(5, 400))} for t in targets]
    return {"states": names, "outcomes": ["converted", "dropped"], "start_state": names[0], "transitions": transitions,
            "conversion_outcome": "converted"}


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _chain_graph():
    return chain_payload(BASE, journeys=8000, start="sign_up")


@pytest.mark.parametrize("payload", [_chain_graph, _random_payload], ids=["paper-chain", "30-states"])
def test_graph_fits_a_laptop_and_no_labels_overlap(payload):
    from engine.app.render.layout import MAX_WIDTH, drawn_edges, label_boxes, layout

    data = payload()
    g = layout(data)
    assert g["width"] <= MAX_WIDTH
    nodes = [(n["x"], n["y"], n["x"] + n["w"], n["y"] + n["h"]) for n in g["nodes"]]
    labels = label_boxes(g)
    assert len(labels) >= min(8, len(g["edges"]) // 3)  # labels are shown, not all hidden away
    for i, a in enumerate(labels):
        assert 0 <= a[0] and a[2] <= g["width"] and 0 <= a[1] and a[3] <= g["height"]
        assert not any(_overlap(a, b) for b in labels[i + 1:]), f"label {a} overlaps another"
        assert not any(_overlap(a, n) for n in nodes), f"label {a} overlaps a box"
    assert not any(_overlap(a, b) for i, a in enumerate(nodes) for b in nodes[i + 1:])
    assert {(e["from"], e["to"]) for e in g["edges"]} == {(s, d) for s, d, _, _ in drawn_edges(data)}
    assert layout(data) == g  # deterministic


def test_html_graph_scales_with_the_viewport_and_hides_minor_labels():
    snap, items = _items()
    page = render(items, "html", snapshot=snap)
    svg = page[page.index('<svg class="journey-graph"'):]
    head = svg[:svg.index(">")]
    assert 'width="100%"' in head and "viewBox=" in head and "max-width:" in head
    assert ".journey-graph .edge.minor .label { visibility: hidden; }" in page
    assert ".journey-graph .edge.minor:hover .label { visibility: visible;" in page


# --- the detection-power footer ---------------------------------------------------------------------

POWER_ROWS = [
    {"journey": "activation", "comparison": "release:v2.3", "edge": "edge:import_data->dropped", "n_before": 203,
     "n_after": 175, "p_before": 0.0197, "p_after": 0.32, "detectable_change": 0.0629, "alpha": 0.05, "power": 0.8,
     "status": "regression reported"},
    {"journey": "activation", "comparison": "release:v2.3", "edge": "edge:sign_up->onboarding_tour", "n_before": 495,
     "n_after": 470, "p_before": 0.48, "p_after": 0.47, "detectable_change": 0.09, "alpha": 0.05, "power": 0.8,
     "status": "no change detected (detectable change >= 0.090)"},
    {"journey": "activation", "comparison": "period:2026-03-09T00:00:00Z", "edge": "edge:sign_up->dropped",
     "n_before": 207, "n_after": 0, "p_before": 0.15, "p_after": None, "detectable_change": None, "alpha": 0.05,
     "power": 0.8, "status": "too early to tell (n = 207 before, 0 after; detectable change >= n/a)"},
]


@pytest.mark.parametrize("fmt", ["text", "md", "html"])
def test_power_footer_says_what_silence_means(fmt):
    _, items = _items()
    page = render(items, fmt, power=POWER_ROWS, **({"snapshot": _items()[0]} if fmt == "html" else {}))
    assert "Detection power: what the data could have shown" in page
    assert ("release v2.3 (activation): 2 edges — 1 regression(s) reported, 1 with no change detected, "
            "0 too early to tell; changes of 6.3 pts to 9.0 pts were detectable") in page
    assert "latest period (from 2026-03-09) (activation): 1 edges" in page
    assert page.index("release v2.3") < page.index("latest period")  # releases first
    assert "sign_up → onboarding_tour" in page and "≥ 9.0 pts" in page and "too early to tell" in page
    assert "Detection power" not in render(items, fmt, **({"snapshot": _items()[0]} if fmt == "html" else {}))
