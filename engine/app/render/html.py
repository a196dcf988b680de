"""Self-contained HTML report: journey graph (inline SVG), bar charts, ranked insights.

No external request of any kind (no fonts, scripts or images from elsewhere),
so the file opens offline and can be mailed. The graph is laid out in layers
by shortest distance from the start state, outcomes in the last column, and
each edge carries its transition probability like the paper's Figure 2.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.app.render import layout, status
from engine.app.render import power as power_footer
from engine.app.render.common import headline, narrative_text, pct, stats_line

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1d2330;max-width:1280px}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem} .muted{color:#667}
.item{border:1px solid #dde;border-radius:8px;padding:.8rem 1rem;margin:.8rem 0}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.8rem;color:#fff}
.High{background:#1a7f37}.Medium{background:#b7791f}.Low{background:#8a8f98}
code{font-size:.85rem;background:#f4f5f7;padding:.1rem .3rem;border-radius:3px}
svg text{font-family:inherit}
table{border-collapse:collapse;font-size:.85rem;margin:.4rem 0 1rem} td,th{border:1px solid #dde;padding:.15rem .5rem;text-align:left}
"""


# Chart titles in plain words (the maths names, B[s, o] and the removal effect, are in the captions).
CHART_TITLES = {
    "absorption": "Chance of ending in \"{outcome}\" from each step",
    "removal": "How much ending in \"{outcome}\" depends on each step (removal effect)",
}
GRAPH_CSS = " ".join(line.strip() for line in (Path(__file__).resolve().parents[1] / "web" / "graph.css")
                     .read_text(encoding="utf-8").splitlines() if not line.startswith("/*"))
INTERVAL_REPLICATES = 200  # enough for a picture; `snapshot --intervals` takes more
INTERVAL_SECONDS = 2.0    # a feed page never waits longer than this for them (about 45 states)
GRAPH_STATES = 150        # the graph and charts show at most this many states, the rarest grouped (as /api/graph)


def render(items: Sequence[Mapping[str, Any]], snapshot: Any = None, title: str = "journeygraph feed",
           power: Sequence[Mapping[str, Any]] | None = None, metrics: Mapping[str, Any] | None = None,
           max_states: int = GRAPH_STATES, empty: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The page. `metrics`: the snapshot's `snapshot --format json`, as the run stored it (views.feed passes it)
    so the page draws without solving the chain; without it the metrics are computed here once."""
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]
    if isinstance(snapshot, Mapping):
        snapshot = _wrap(snapshot)
    if snapshot is not None:
        payload = snapshot.payload
        view = _view(snapshot, metrics, max_states)
        parts.append(f"<p class=\"muted\">Journey <b>{_e(payload['journey'])}</b>, snapshot "
                     f"<code>{_e(payload['snapshot_id'])}</code>, {payload.get('completed', 0)} completed journeys, "
                     f"window {_e(payload['window']['start'])} – {_e(payload['window']['end'])}</p>")
        parts.append("<h2>Journey graph</h2>" + graph_svg(layout.graph_input(view, payload["conversion_outcome"])))
        parts.append(_charts(snapshot, view, payload["conversion_outcome"]))
    parts.append("<h2>Ranked insights</h2>")
    parts.extend(_item(item) for item in items)
    if not items:
        parts.append("<p>No insights: no finding passed its thresholds and the FDR control.</p>")
        parts.extend(f"<p class=\"muted\">{_e(line)}</p>" for line in status.lines(empty or []))
    if power is not None:
        parts.append(_power(power))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _view(snapshot: Any, metrics: Mapping[str, Any] | None, max_states: int) -> dict[str, Any]:
    """The metrics to draw: the stored ones when given, else computed once; the rarest states grouped as "other"."""
    from engine import state_metrics

    data = dict(metrics) if metrics is not None else state_metrics.compute(snapshot)
    return state_metrics.group_rare(data, max_states)


def _wrap(payload: Mapping[str, Any]) -> Any:
    """A bare payload dict becomes a Snapshot so the charts can use its chain metrics."""
    from engine.snapshot import Snapshot

    return Snapshot.from_payload(payload)


def _power(rows: Sequence[Mapping[str, Any]]) -> str:
    """The detection-power footer: per comparison a headline and its busiest edges."""
    groups = power_footer.summarise(rows)
    out = [f"<footer id=\"power\"><h2>{_e(power_footer.TITLE)}</h2>"]
    for g in groups:
        out.append(f"<p>{_e(power_footer.headline(g))}</p><table><tr><th>busiest edges</th><th>n before</th>"
                   "<th>n after</th><th>detectable change</th><th>status</th></tr>")
        out.extend(f"<tr><td>{_e(power_footer.edge_words(r['edge']))}</td><td>{r['n_before']:,}</td>"
                   f"<td>{r['n_after']:,}</td><td>{_e(power_footer.mde_words(r))}</td>"
                   f"<td>{_e(power_footer.status_words(r))}</td></tr>" for r in g["busiest"])
        out.append("</table>")
    return "".join(out) + f"<p class=\"muted\">{_e(power_footer.note(groups))}</p></footer>"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _item(item: Mapping[str, Any]) -> str:
    f = item["finding"]
    text = narrative_text(item)
    return (f"<div class=\"item\" id=\"{_e(item['insight_id'])}\"><b>{item['rank']}.</b> "
            f"<span class=\"badge {_e(f['confidence_label'])}\">{_e(f['confidence_label'])}</span> "
            f"<span class=\"muted\">{_e(f['type'])} · score {item['score']:.3f}</span><br>"
            f"<b>{_e(headline(item))}</b><br><code>{_e(stats_line(item))}</code>"
            + (f"<p>{_e(text)}</p>" if text else "") + "</div>")


def graph_svg(payload: Mapping[str, Any]) -> str:
    """The journey graph as an inline SVG string, drawn from `layout.layout` (the web page draws the same)."""
    g = layout.layout(payload)
    out = [f"<svg class=\"journey-graph\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {g['width']} {g['height']}\" "
           f"width=\"100%\" style=\"max-width:{g['width']}px;height:auto\" role=\"img\" aria-label=\"journey graph\">",
           f"<style>{GRAPH_CSS}</style><defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" "
           "markerWidth=\"8\" markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\">"
           "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#556\"/></marker></defs>"]
    out.extend(_edge_svg(e) for e in g["edges"])
    out.extend(_node_svg(n) for n in g["nodes"])
    out.append("</svg>")
    return "".join(out) + f"<p class=\"muted\">{_e(g['caption'])}</p>"


def _edge_svg(e: Mapping[str, Any]) -> str:
    """Path, a wide invisible hit line for hovering, the label (minor ones show on hover) and a tooltip."""
    lab, cls = e["label"], "edge " + e["kind"] + ("" if e["label"]["shown"] else " minor")
    return (f"<g class=\"{cls}\"><title>{_e(layout.edge_title(e))}</title>"
            f"<path d=\"{e['d']}\" class=\"line\" stroke-width=\"{e['stroke']}\" marker-end=\"url(#arrow)\"/>"
            f"<path d=\"{e['d']}\" class=\"hit\"/>"
            f"<text x=\"{lab['x']}\" y=\"{lab['y'] + 4}\" class=\"label\">{_e(lab['text'])}</text></g>")


def _node_svg(n: Mapping[str, Any]) -> str:
    return (f"<g class=\"node {n['kind']}\"><title>{_e(n['name'])}</title><rect x=\"{n['x']}\" y=\"{n['y']}\" "
            f"width=\"{n['w']}\" height=\"{n['h']}\" rx=\"{16 if n['kind'] in ('converted', 'lost') else 6}\"/>"
            f"<text x=\"{n['x'] + n['w'] / 2:.1f}\" y=\"{n['y'] + n['h'] / 2 + 4.5:.1f}\">{_e(n['text'])}</text></g>")


def bar_chart_svg(title: str, rows: Sequence[tuple[str, float]], fmt: str = "{:.3f}") -> str:
    """A horizontal bar chart (values ≥ 0 scaled to the largest) as an inline SVG string."""
    top = max([v for _, v in rows] + [1e-12])
    height = 34 + 24 * len(rows)
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"560\" height=\"{height}\" role=\"img\" "
           f"aria-label=\"{_e(title)}\"><text x=\"0\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{_e(title)}</text>"]
    for i, (name, value) in enumerate(rows):
        y = 28 + 24 * i
        w = 300 * max(0.0, value) / top
        out.append(f"<text x=\"150\" y=\"{y + 13}\" font-size=\"12\" text-anchor=\"end\">{_e(name)}</text>"
                   f"<rect x=\"158\" y=\"{y}\" width=\"{w:.1f}\" height=\"16\" fill=\"#4c6ef5\"/>"
                   f"<text x=\"{164 + w:.1f}\" y=\"{y + 13}\" font-size=\"12\">{fmt.format(value)}</text>")
    out.append("</svg>")
    return "".join(out)


def interval_chart_svg(title: str, rows: Sequence[tuple[str, float, float | None, float | None]],
                       fmt: str = "{:+.3f}") -> str:
    """Estimates with interval whiskers (a forest plot) around a zero line, so negative values show too.

    rows: (name, estimate, low, high); a row without an interval gets the dot alone.
    """
    values = [v for _, est, low, high in rows for v in (est, low, high) if v is not None] + [0.0]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0

    def x(value: float) -> float:  # value -> horizontal pixel
        return 158 + 300 * (value - lo) / span

    height = 34 + 24 * len(rows)
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"600\" height=\"{height}\" role=\"img\" "
           f"aria-label=\"{_e(title)}\"><text x=\"0\" y=\"16\" font-size=\"13\" font-weight=\"bold\">{_e(title)}</text>",
           f"<line x1=\"{x(0):.1f}\" y1=\"24\" x2=\"{x(0):.1f}\" y2=\"{height - 4}\" stroke=\"#99a\" stroke-dasharray=\"3 3\"/>"]
    for i, (name, est, low, high) in enumerate(rows):
        y = 28 + 24 * i + 8
        out.append(f"<text x=\"150\" y=\"{y + 5}\" font-size=\"12\" text-anchor=\"end\">{_e(name)}</text>")
        if low is not None and high is not None:
            out.append(f"<line class=\"interval\" x1=\"{x(low):.1f}\" y1=\"{y}\" x2=\"{x(high):.1f}\" y2=\"{y}\" "
                       f"stroke=\"#4c6ef5\" stroke-width=\"2\"><title>{fmt.format(low)} to {fmt.format(high)}</title></line>")
        out.append(f"<circle cx=\"{x(est):.1f}\" cy=\"{y}\" r=\"4\" fill=\"#1c2b8f\"/>"
                   f"<text x=\"{max(x(est), x(high) if high is not None else x(est)) + 8:.1f}\" y=\"{y + 5}\" "
                   f"font-size=\"12\">{fmt.format(est)}</text>")
    out.append("</svg>")
    return "".join(out)


def _removal_intervals(snapshot: Any, conv: str) -> tuple[dict[str, tuple[float, float]], str]:
    """Interval per state for the chart, and the caption; a chain too big or too loopy gets the dots alone.

    The size is checked before the chain is built: a large snapshot's chart never touches its chain."""
    from engine import uncertainty
    from ontology.errors import EngineError

    too_big = "No intervals: the chain is too large to redraw here; `journeygraph snapshot ID --intervals` gives them."
    if uncertainty.seconds_estimate(len(snapshot.payload["states"]), INTERVAL_REPLICATES) > INTERVAL_SECONDS:
        return {}, too_big
    try:
        found = uncertainty.bootstrap(snapshot.metrics, seed=uncertainty.seed_for(snapshot.snapshot_id),
                                      replicates=INTERVAL_REPLICATES, max_seconds=INTERVAL_SECONDS)
    except EngineError:
        return {}, too_big
    if found.removal_effect is None:
        return {}, "No intervals: too many bootstrap redraws could not be solved."
    bounds = {s: by_outcome[conv] for s, by_outcome in found.removal_effect.items()}
    return bounds, (f"Lines: {found.level:.0%} bootstrap intervals ({found.replicates} replicates, first-order chain; "
                    f"{found.redirected_replicates} redraws lost a loop's exits, {found.failed_replicates} failed).")


def _charts(snapshot: Any, view: Mapping[str, Any], conv: str) -> str:
    """Bars of B[step, conv] and the removal effects, from the metrics view (no chain solved here)."""
    rows = [r for r in view["states"] if "grouped_states" not in r]
    absorb = [(r["state"], float(r["absorption"][conv])) for r in rows]
    effects = sorted(((r["state"], float(r["removal_effect"][conv])) for r in rows
                      if r["state"] != view["start_state"] and r["removal_effect"][conv] is not None),
                     key=lambda r: (-r[1], r[0]))
    bounds, note = _removal_intervals(snapshot, conv)
    bars = [(s, 100 * v, *(None if b is None else 100 * b for b in bounds.get(s, (None, None)))) for s, v in effects]
    return ("<h2>Each step's part in the outcome</h2>"
            + bar_chart_svg(CHART_TITLES["absorption"].format(outcome=conv), absorb, fmt="{:.1%}")
            + interval_chart_svg(CHART_TITLES["removal"].format(outcome=conv), bars, fmt="{:+.1f} pts")
            + f"<p class=\"muted\">Bars: the absorbing chain's probability B[step, {_e(conv)}]. Removal effect: the "
            f"points by which the chance from the start falls when the step is taken out of the chain (its moves "
            f"renormalised over the other steps). {_e(note)}{_e(_limits(view))} Reach per state: "
            + ", ".join(f"{_e(r['state'])} {pct(r['reach'])}" for r in rows) + ".</p>")


def _limits(view: Mapping[str, Any]) -> str:
    """What a large snapshot's charts leave out: grouped rare states, removal effects outside the candidates."""
    out = ""
    if view.get("grouped"):
        out += (f" The {view['grouped']['states']} states with the lowest reach are grouped as one \"other\" step "
                "here; `journeygraph snapshot` lists every state.")
    block = view.get("removal_effect_candidates")
    if block:
        out += (f" Removal effects were solved for {block['computed']} candidate step{'' if block['computed'] == 1 else 's'}"
                f" of {block['states']} "
                "(reached by enough journeys, with lift on the conversion).")
    return out
