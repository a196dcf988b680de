"""Self-contained HTML report: journey graph (inline SVG), bar charts, ranked insights.

No external request of any kind (no fonts, scripts or images from elsewhere),
so the file opens offline and can be mailed. The graph is laid out in layers
by shortest distance from the start state, outcomes in the last column, and
each edge carries its transition probability like the paper's Figure 2.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from engine.app.render.common import headline, narrative_text, pct, stats_line

MIN_EDGE_P = 0.10  # edges below this probability are left out of the drawing (the JSON keeps them)
MAX_OUT_EDGES = 3  # and at most this many (the strongest) per state, so the graph stays readable
NODE_W, NODE_H, COL_W, ROW_H = 150, 36, 230, 70
TOP = 90  # room above the first row for backward arcs
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem} .muted{color:#667}
.item{border:1px solid #dde;border-radius:8px;padding:.8rem 1rem;margin:.8rem 0}
.badge{display:inline-block;border-radius:4px;padding:0 .4rem;font-size:.8rem;color:#fff}
.High{background:#1a7f37}.Medium{background:#b7791f}.Low{background:#8a8f98}
code{font-size:.85rem;background:#f4f5f7;padding:.1rem .3rem;border-radius:3px}
svg text{font-family:inherit}
"""


# Chart titles in plain words (the maths names, B[s, o] and the removal effect, are in the captions).
CHART_TITLES = {
    "absorption": "Chance of ending in \"{outcome}\" from each step",
    "removal": "How much ending in \"{outcome}\" depends on each step (removal effect)",
}
INTERVAL_REPLICATES = 200  # enough for a picture; `snapshot --intervals` takes more
INTERVAL_SECONDS = 2.0    # a feed page never waits longer than this for them (about 45 states)


def render(items: Sequence[Mapping[str, Any]], snapshot: Any = None, title: str = "journeygraph feed") -> str:
    parts = [f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]
    if isinstance(snapshot, Mapping):
        snapshot = _wrap(snapshot)
    if snapshot is not None:
        payload = snapshot.payload
        parts.append(f"<p class=\"muted\">Journey <b>{_e(payload['journey'])}</b>, snapshot "
                     f"<code>{_e(payload['snapshot_id'])}</code>, {payload.get('completed', 0)} completed journeys, "
                     f"window {_e(payload['window']['start'])} – {_e(payload['window']['end'])}</p>")
        parts.append("<h2>Journey graph</h2>" + graph_svg(payload))
        parts.append(_charts(snapshot, payload))
    parts.append("<h2>Ranked insights</h2>")
    parts.extend(_item(item) for item in items)
    if not items:
        parts.append("<p>No insights: no finding passed its thresholds and the FDR control.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _wrap(payload: Mapping[str, Any]) -> Any:
    """A bare payload dict becomes a Snapshot so the charts can use its chain metrics."""
    from engine.snapshot import Snapshot

    return Snapshot.from_payload(payload)


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


def _layers(payload: Mapping[str, Any]) -> dict[str, int]:
    """Column of each node: BFS distance from the start over drawn edges; outcomes last."""
    edges = _edges(payload)
    depth = {payload["start_state"]: 0}
    frontier = [payload["start_state"]]
    while frontier:
        nxt = []
        for node in frontier:
            for src, dst, _ in edges:
                if src == node and dst in payload["states"] and dst not in depth:
                    depth[dst] = depth[node] + 1
                    nxt.append(dst)
        frontier = sorted(nxt)
    last = max(depth.values(), default=0) + 1
    for s in payload["states"]:
        depth.setdefault(s, last - 1 if last > 1 else 1)
    for o in payload["outcomes"]:
        depth[o] = last
    return depth


def _edges(payload: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    totals: dict[str, int] = {}
    for t in payload["transitions"]:
        totals[t["from"]] = totals.get(t["from"], 0) + int(t["count"])
    by_src: dict[str, list[tuple[str, str, float]]] = {}
    for t in payload["transitions"]:
        p = int(t["count"]) / totals[t["from"]] if totals[t["from"]] else 0.0
        if p >= MIN_EDGE_P:
            by_src.setdefault(t["from"], []).append((t["from"], t["to"], p))
    keep = []
    for src in sorted(by_src):
        keep.extend(sorted(by_src[src], key=lambda e: (-e[2], e[1]))[:MAX_OUT_EDGES])
    return keep


def graph_svg(payload: Mapping[str, Any]) -> str:
    """The journey graph as an inline SVG string (nodes, arrows, probability labels).

    Edges to the next column are short arcs; edges skipping columns arc below
    the row (deeper the longer they are) so they never cross a node; edges
    going back arc above it.
    """
    depth = _layers(payload)
    cols: dict[int, list[str]] = {}
    for node in sorted(depth, key=lambda n: (depth[n], n not in payload["outcomes"], n)):
        cols.setdefault(depth[node], []).append(node)
    pos = {n: (30 + c * COL_W, TOP + r * ROW_H) for c, nodes in cols.items() for r, n in enumerate(nodes)}
    edges = [_edge_svg(pos[src], pos[dst], p, depth[dst] - depth[src]) for src, dst, p in _edges(payload)]
    caption = (f"<p class=\"muted\">Transition probabilities; per state the {MAX_OUT_EDGES} strongest edges "
               f"of at least {MIN_EDGE_P:.2f} are drawn (the JSON output has them all).</p>")
    width = 60 + max(cols) * COL_W + NODE_W
    height = int(max([TOP + max(len(v) for v in cols.values()) * ROW_H] + [lowest for _, lowest in edges]) + 30)
    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" "
           f"viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"journey graph\">",
           "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"8\" "
           "markerHeight=\"8\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#556\"/></marker></defs>"]
    out.extend(svg for svg, _ in edges)
    for node, (x, y) in sorted(pos.items()):
        outcome = node in payload["outcomes"]
        fill = "#e6f4ea" if node == payload.get("conversion_outcome") else "#fdecea" if outcome else "#eef2fb"
        out.append(f"<g><rect x=\"{x}\" y=\"{y}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"{18 if outcome else 6}\" "
                   f"fill=\"{fill}\" stroke=\"#556\"/><text x=\"{x + NODE_W / 2}\" y=\"{y + 23}\" "
                   f"text-anchor=\"middle\" font-size=\"13\">{_e(node)}</text></g>")
    out.append("</svg>")
    return "".join(out) + caption


def _edge_svg(a: tuple[int, int], b: tuple[int, int], p: float, span: int) -> tuple[str, float]:
    """One edge as an arc with its label; returns (svg, lowest y reached)."""
    if a == b:  # self-loop: a small loop bulging out of the node's right side
        x, y = a[0] + NODE_W, a[1]
        path = f"M{x:.1f},{y + 8:.1f} C{x + 45:.1f},{y - 8:.1f} {x + 45:.1f},{y + NODE_H + 8:.1f} {x:.1f},{y + NODE_H - 8:.1f}"
        return _edge(path, p, x + 52, y + NODE_H / 2 + 4), y + NODE_H
    if span == 1:
        x1, y1, x2, y2 = a[0] + NODE_W, a[1] + NODE_H / 2, b[0], b[1] + NODE_H / 2
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 12
    elif span == 0:  # same column: arc out to the left
        x1, y1, x2, y2 = a[0], a[1] + NODE_H / 2, b[0], b[1] + NODE_H / 2
        cx, cy = a[0] - 30 - 8 * abs(y1 - y2) / ROW_H, (y1 + y2) / 2
    elif span < 0:  # backwards: arc over the top, between the nodes' centres
        x1, y1, x2, y2 = a[0] + NODE_W / 2, a[1], b[0] + NODE_W / 2, b[1]
        cx, cy = (x1 + x2) / 2, min(y1, y2) - 30 - 10 * min(4, abs(x1 - x2) / COL_W)
    else:  # skips columns: leave from the bottom, arc under the row
        x1, y1, x2, y2 = a[0] + NODE_W / 2, a[1] + NODE_H, b[0] + NODE_W / 2, b[1] + NODE_H
        cx, cy = (x1 + x2) / 2, max(y1, y2) + 30 + 22 * span
    lx, ly = 0.25 * x1 + 0.5 * cx + 0.25 * x2, 0.25 * y1 + 0.5 * cy + 0.25 * y2
    path = f"M{x1:.1f},{y1:.1f} Q{cx:.1f},{cy:.1f} {x2:.1f},{y2:.1f}"
    return _edge(path, p, lx, ly - 3), max(y1, y2, ly + 12)


def _edge(path: str, p: float, lx: float, ly: float) -> str:
    """Stroke width grows with the probability; the label sits on a white halo for legibility."""
    return (f"<path d=\"{path}\" fill=\"none\" stroke=\"#556\" stroke-opacity=\"0.7\" "
            f"stroke-width=\"{0.8 + 3 * p:.2f}\" marker-end=\"url(#arrow)\"/>"
            f"<text x=\"{lx:.1f}\" y=\"{ly:.1f}\" font-size=\"11\" text-anchor=\"middle\" fill=\"#223\" "
            f"stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\">{p:.2f}</text>")


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


def _removal_intervals(metrics: Any, snapshot_id: str, conv: str) -> tuple[dict[str, tuple[float, float]], str]:
    """Interval per state for the chart, and the caption; a chain too big or too loopy gets the dots alone."""
    from engine import uncertainty
    from ontology.errors import EngineError

    try:
        found = uncertainty.bootstrap(metrics, seed=uncertainty.seed_for(snapshot_id), replicates=INTERVAL_REPLICATES,
                                      max_seconds=INTERVAL_SECONDS)
    except EngineError:
        return {}, "No intervals: the chain is too large to redraw here; `journeygraph snapshot ID --intervals` gives them."
    if found.removal_effect is None:
        return {}, "No intervals: too many bootstrap redraws could not be solved."
    bounds = {s: by_outcome[conv] for s, by_outcome in found.removal_effect.items()}
    return bounds, (f"Lines: {found.level:.0%} bootstrap intervals ({found.replicates} replicates, first-order chain; "
                    f"{found.redirected_replicates} redraws lost a loop's exits, {found.failed_replicates} failed).")


def _charts(snapshot: Any, payload: Mapping[str, Any]) -> str:
    metrics = getattr(snapshot, "metrics", None)
    if metrics is None:
        return ""
    conv = payload["conversion_outcome"]
    absorb = [(s, float(metrics.absorption(s, conv))) for s in payload["states"]]
    effects = sorted(((s, float(v[0])) for s, v in metrics.removal_effects(conv).items()), key=lambda r: (-r[1], r[0]))
    bounds, note = _removal_intervals(metrics, payload["snapshot_id"], conv)
    rows = [(s, 100 * v, *(None if b is None else 100 * b for b in bounds.get(s, (None, None)))) for s, v in effects]
    return ("<h2>Each step's part in the outcome</h2>"
            + bar_chart_svg(CHART_TITLES["absorption"].format(outcome=conv), absorb, fmt="{:.1%}")
            + interval_chart_svg(CHART_TITLES["removal"].format(outcome=conv), rows, fmt="{:+.1f} pts")
            + f"<p class=\"muted\">Bars: the absorbing chain's probability B[step, {_e(conv)}]. Removal effect: the "
            f"points by which the chance from the start falls when the step is taken out of the chain (its moves "
            f"renormalised over the other steps). {_e(note)} Reach per state: "
            + ", ".join(f"{_e(s)} {pct(payload['reach_counts'].get(s, 0) / max(1, payload['completed']))}"
                        for s in payload["states"]) + ".</p>")
