"""The journey graph's layout, computed once here for the HTML feed and the web page (`/api/graph`'s `layout`).

A layered drawing that fits a laptop screen: back edges are found by a
depth-first walk from the start state along the strongest edges, states are
put in columns by their longest forward path from the start (outcomes last),
columns are squeezed together when there are more than fit in MAX_WIDTH, and
an edge that skips columns passes through a reserved slot in each column it
crosses, so it never runs over a box. Columns are ordered by the barycentre
of their neighbours (fewer crossings) and rows pulled towards them.

Each edge carries its share of the moves out of its source as a label. Labels
are placed one by one, strongest edge first, at the first spot along the
edge whose box overlaps no box and no label already placed (and crosses the
fewest other edges); labels of minor edges, and any that found no free spot,
are shown only on hover. `label_boxes` gives the shown boxes for tests.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ontology.errors import BadInput

MAX_WIDTH = 1280          # px: the drawing never needs more (a laptop screen); it scales down with the viewport
MIN_EDGE_P = 0.10         # moves below this share are left out of the drawing (the JSON keeps them all) ...
MAX_OUT_EDGES = 3         # ... and all but the strongest this many per state (self-loops apart)
LABEL_MIN_P = 0.15        # an edge's label is shown when its share is at least this
LABELS_PER_STATE = 2      # ... and it is among its source's strongest; other labels show on hover
NODE_H, NODE_W_MAX, NODE_W_MIN = 34, 150, 84
GAP = 64                  # px between columns: room for the labels
ROW_GAP = 30              # px between boxes in a column: room for self-loops
DUMMY_H = 14              # px a passing edge takes in a column
MARGIN = 16
TOP = 30                  # room above the first row for self-loops
CHAR_W, LABEL_H = 6.6, 14  # a label's box: 11 px text (a generous width per character) on a halo
MAX_STATES = 400          # work cap: the label search grows with the square of the edges (1,000 states: 4 s)


@dataclass
class _Vertex:
    name: str
    col: int
    real: bool
    y: float = 0.0
    h: float = NODE_H


@dataclass
class _Edge:
    src: str
    dst: str
    p: float
    count: int
    chain: list[str] = field(default_factory=list)  # vertex names from src to dst (dummies between)
    kind: str = "forward"


def graph_input(data: Mapping[str, Any], conversion: str) -> dict[str, Any]:
    """What `layout` reads, from `snapshot --format json` data (possibly grouped): the HTML feed and /api/graph."""
    return {"states": [s["state"] for s in data["states"]], "outcomes": data["outcomes"],
            "transitions": data["transitions"], "start_state": data["start_state"], "conversion_outcome": conversion}


def drawn_edges(payload: Mapping[str, Any]) -> list[tuple[str, str, float, int]]:
    """(from, to, share of the source's moves, count) of the edges drawn.

    Per state its MAX_OUT_EDGES strongest moves to other steps of at least MIN_EDGE_P (at least its
    strongest one, so every step leads somewhere), and its self-loop when that is at least MIN_EDGE_P.
    """
    totals: dict[str, int] = {}
    for t in payload["transitions"]:
        totals[t["from"]] = totals.get(t["from"], 0) + int(t["count"])
    by_src: dict[str, list[tuple[str, str, float, int]]] = {}
    for t in payload["transitions"]:
        p = int(t["count"]) / totals[t["from"]] if totals[t["from"]] else 0.0
        by_src.setdefault(t["from"], []).append((t["from"], t["to"], p, int(t["count"])))
    keep: list[tuple[str, str, float, int]] = []
    for src in sorted(by_src):
        ranked = sorted(by_src[src], key=lambda e: (-e[2], e[1]))
        moves = [e for e in ranked if e[1] != src]
        keep.extend([e for e in moves if e[2] >= MIN_EDGE_P][:MAX_OUT_EDGES] or moves[:1])
        keep.extend(e for e in ranked if e[1] == src and e[2] >= MIN_EDGE_P)
    return sorted(keep, key=lambda e: (e[0], -e[2], e[1]))


def layout(payload: Mapping[str, Any]) -> dict[str, Any]:
    """Boxes, edge paths and label spots of the journey graph, in px of a `width` × `height` view box."""
    states, outcomes = list(payload["states"]), list(payload["outcomes"])
    if len(states) > MAX_STATES:
        raise BadInput(f"a graph of {len(states)} states is too large to draw (at most {MAX_STATES}); ask for fewer "
                       "states (max_states), the rarest are grouped as one \"other\" step")
    edges = [_Edge(*e) for e in drawn_edges(payload) if e[0] in states and (e[1] in states or e[1] in outcomes)]
    cols = _columns(payload.get("start_state") or (states[0] if states else ""), states, outcomes, edges,
                    payload["transitions"])
    ncols = max(cols.values(), default=0) + 1
    node_w = min(NODE_W_MAX, (MAX_WIDTH - 2 * MARGIN - (ncols - 1) * GAP) / max(1, ncols))
    vertices = {n: _Vertex(n, c, True) for n, c in cols.items()}
    for e in edges:
        e.kind = ("loop" if e.src == e.dst else "forward" if cols[e.dst] > cols[e.src] else
                  "back" if cols[e.dst] < cols[e.src] else "same")
        e.chain = _chain(e, cols, vertices)
    columns = _order(vertices, edges, ncols)
    _place_rows(columns, vertices, edges)
    width = 2 * MARGIN + ncols * node_w + (ncols - 1) * GAP
    height = max((v.y + v.h for v in vertices.values()), default=TOP) + MARGIN + 20
    x_of = {c: MARGIN + c * (node_w + GAP) for c in range(ncols)}
    geo = _Geometry(vertices, x_of, node_w, edges)
    nodes = [_node_json(v, x_of[v.col], node_w, payload) for v in sorted(vertices.values(), key=lambda v: v.name) if v.real]
    drawn = [_edge_json(i, e, geo) for i, e in enumerate(edges)]
    _place_labels(drawn, nodes, width, height)
    graph = {"width": round(width, 1), "height": round(height, 1), "nodes": nodes, "edges": drawn,
             "min_edge_p": MIN_EDGE_P, "max_out_edges": MAX_OUT_EDGES, "edges_total": len(payload["transitions"])}
    return {**graph, "caption": caption(graph)}


def label_boxes(graph: Mapping[str, Any], shown_only: bool = True) -> list[tuple[float, float, float, float]]:
    """(x0, y0, x1, y1) of each label box (the shown ones by default), for overlap checks."""
    return [_box(e["label"]) for e in graph["edges"] if e["label"]["shown"] or not shown_only]


def _box(label: Mapping[str, Any]) -> tuple[float, float, float, float]:
    return (label["x"] - label["w"] / 2, label["y"] - label["h"] / 2, label["x"] + label["w"] / 2, label["y"] + label["h"] / 2)


def _columns(start: str, states: list[str], outcomes: list[str], edges: list[_Edge],
             transitions: list[Mapping[str, Any]]) -> dict[str, int]:
    """Shortest distance from the start along drawn edges (few columns), outcomes last; squeezed to what fits.

    A step the drawn edges do not reach is put one column after the step with the most moves into it
    (any move), and the walk goes on from there.
    """
    layer: dict[str, int] = {}
    links = sorted(((int(t["count"]), t["from"], t["to"]) for t in transitions
                    if t["to"] in states and t["from"] != t["to"]), key=lambda r: (-r[0], r[1], r[2]))
    frontier = [start] if start in states else []
    layer.update({n: 0 for n in frontier})
    while len(layer) < len(states):
        while frontier:
            nxt = sorted({e.dst for e in edges if e.src in frontier and e.dst in states and e.dst not in layer})
            for n in nxt:
                layer[n] = min(layer[e.src] for e in edges if e.dst == n and e.src in frontier) + 1
            frontier = nxt
        if len(layer) == len(states):
            break
        bridge = next(((src, dst) for _, src, dst in links if src in layer and dst not in layer), None)
        if bridge is None:  # not reachable at all: a fresh root
            root = min(s for s in states if s not in layer)
            layer[root], frontier = 0, [root]
        else:
            layer[bridge[1]], frontier = layer[bridge[0]] + 1, [bridge[1]]
    deepest = max(layer.values(), default=0)
    fit = int((MAX_WIDTH - 2 * MARGIN + GAP) // (NODE_W_MIN + GAP))
    if deepest + 2 > fit:  # too many columns: squeeze the state layers into fit - 1 columns, the start alone in the first
        layer = {s: math.ceil(d * (fit - 2) / deepest) for s, d in layer.items()}
        deepest = fit - 2
    return {**layer, **{o: deepest + 1 for o in outcomes}}


def _chain(e: _Edge, cols: dict[str, int], vertices: dict[str, _Vertex]) -> list[str]:
    """The vertices an edge passes: a reserved slot in every column strictly between its ends."""
    a, b = cols[e.src], cols[e.dst]
    step = 1 if b > a else -1
    chain = [e.src]
    for c in range(a + step, b, step) if abs(b - a) > 1 else ():
        name = f"\0{e.src}\0{e.dst}\0{c}"
        vertices[name] = _Vertex(name, c, False, h=DUMMY_H)
        chain.append(name)
    return chain + [e.dst]


def _links(edges: list[_Edge]) -> list[tuple[str, str, float]]:
    return [(u, v, e.p) for e in edges if e.kind != "loop" for u, v in zip(e.chain, e.chain[1:])]


def _order(vertices: dict[str, _Vertex], edges: list[_Edge], ncols: int) -> list[list[str]]:
    """Vertices per column, ordered by the barycentre of their neighbours (a few sweeps each way)."""
    columns: list[list[str]] = [[] for _ in range(ncols)]
    for vx in sorted(vertices.values(), key=lambda v: (v.col, not v.real, v.name)):
        columns[vx.col].append(vx.name)
    links = _links(edges)
    nbrs: dict[str, list[str]] = {n: [] for n in vertices}
    for u, v, _ in links:
        nbrs[u].append(v)
        nbrs[v].append(u)
    for sweep in range(8):
        rng = range(1, ncols) if sweep % 2 == 0 else range(ncols - 2, -1, -1)
        for c in rng:
            ref = c - 1 if sweep % 2 == 0 else c + 1
            columns[c] = _by_barycentre(columns[c], columns[ref], nbrs)
    return columns


def _by_barycentre(column: list[str], ref: list[str], nbrs: dict[str, list[str]]) -> list[str]:
    """The column sorted by the mean position of each vertex's neighbours in `ref` (its own place if none)."""
    pos = {n: i for i, n in enumerate(ref)}
    keys = {}
    for i, n in enumerate(column):
        near = [pos[m] for m in nbrs[n] if m in pos]
        keys[n] = (sum(near) / len(near) if near else float(i), n)
    return sorted(column, key=keys.__getitem__)


def _place_rows(columns: list[list[str]], vertices: dict[str, _Vertex], edges: list[_Edge]) -> None:
    """y of each vertex: stacked in order, then pulled towards its neighbours' centres, keeping order and spacing."""
    for col in columns:
        y = float(TOP)
        for n in col:
            vertices[n].y = y
            y += vertices[n].h + (ROW_GAP if vertices[n].real else 6)
    links = _links(edges)
    for _ in range(6):
        want: dict[str, list[tuple[float, float]]] = {}
        for u, v, p in links:
            want.setdefault(u, []).append((_mid(vertices[v]), p + 0.05))
            want.setdefault(v, []).append((_mid(vertices[u]), p + 0.05))
        for col in columns:
            for n in col:
                pulls = want.get(n)
                if pulls:
                    total = sum(w for _, w in pulls)
                    vertices[n].y = sum(m * w for m, w in pulls) / total - vertices[n].h / 2
            _spread(col, vertices)
    low = min((vx.y for vx in vertices.values()), default=TOP)
    for vx in vertices.values():
        vx.y += TOP - low


def _mid(v: _Vertex) -> float:
    return v.y + v.h / 2


def _spread(col: list[str], vertices: dict[str, _Vertex]) -> None:
    """Keep the column's order and spacing with the least total move (forward push, then the block re-centred)."""
    if not col:
        return
    wanted = [vertices[n].y for n in col]
    for prev, n in zip(col, col[1:]):
        gap = ROW_GAP if vertices[prev].real and vertices[n].real else 6
        vertices[n].y = max(vertices[n].y, vertices[prev].y + vertices[prev].h + gap)
    shift = sum(w - vertices[n].y for n, w in zip(col, wanted)) / len(col)
    for n in col:
        vertices[n].y += min(0.0, shift)


class _Geometry:
    """Ports and x positions: where each edge leaves and enters a box."""

    def __init__(self, vertices: dict[str, _Vertex], x_of: dict[int, float], node_w: float, edges: list[_Edge]) -> None:
        self.v, self.x_of, self.w = vertices, x_of, node_w
        sides: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
        for i, e in enumerate(edges):
            if e.kind == "loop":
                continue
            first, last = e.chain[1], e.chain[-2]
            rightward = self._col(e.chain[1]) > self._col(e.src) or e.kind == "same"
            sides.setdefault((e.src, "r" if rightward else "l"), []).append((_mid(vertices[first]), i, 0))
            arrive_right = e.kind == "same" or self._col(last) > self._col(e.dst)
            sides.setdefault((e.dst, "r" if arrive_right else "l"), []).append((_mid(vertices[last]), i, 1))
        self.port: dict[tuple[int, int], float] = {}
        for (name, _), attached in sides.items():
            attached.sort()
            for k, (_, i, end) in enumerate(attached):
                self.port[(i, end)] = vertices[name].y + NODE_H * (k + 1) / (len(attached) + 1)

    def _col(self, name: str) -> int:
        return self.v[name].col

    def segments(self, i: int, e: _Edge) -> list[tuple[tuple[float, float], ...]]:
        """The edge as cubic Bézier segments ((x0, y0), c1, c2, (x1, y1)); loops sit on top of their box."""
        if e.kind == "loop":
            x, y = self.x_of[self._col(e.src)] + self.w, self.v[e.src].y
            return [((x - 34, y), (x - 40, y - 26), (x - 6, y - 26), (x - 12, y))]
        if e.kind == "same":
            x, y0, y1 = self.x_of[self._col(e.src)] + self.w, self.port[(i, 0)], self.port[(i, 1)]
            bulge = min(GAP - 12, 18 + 0.15 * abs(y1 - y0))
            return [((x, y0), (x + bulge, y0), (x + bulge, y1), (x, y1))]
        points: list[tuple[float, float]] = []
        for k, name in enumerate(e.chain):
            v, left = self.v[name], self.x_of[self._col(name)]
            right = left + self.w
            going_right = self._col(e.chain[-1]) > self._col(e.chain[0])
            if k == 0:
                points.append((right if going_right else left, self.port[(i, 0)]))
            elif k == len(e.chain) - 1:
                points.append((left if going_right else right, self.port[(i, 1)]))
            else:
                y = _mid(v)
                points.extend([(left, y), (right, y)] if going_right else [(right, y), (left, y)])
        segs = []
        for (x0, y0), (x1, y1) in zip(points[::2], points[1::2]):  # gap crossings: S-curves
            dx = (x1 - x0) / 2
            segs.append(((x0, y0), (x0 + dx, y0), (x1 - dx, y1), (x1, y1)))
        for (x0, y0), (x1, y1) in zip(points[1::2], points[2::2]):  # through a column's reserved slot: straight
            segs.append(((x0, y0), (x0 + (x1 - x0) / 3, y0), (x0 + 2 * (x1 - x0) / 3, y1), (x1, y1)))
        return sorted(segs, key=lambda s: abs(s[0][0] - points[0][0]))


def _node_json(v: _Vertex, x: float, w: float, payload: Mapping[str, Any]) -> dict[str, Any]:
    outcome = v.name in payload["outcomes"]
    kind = ("converted" if v.name == payload.get("conversion_outcome") else "lost") if outcome else (
        "start" if v.name == payload.get("start_state") else "state")
    chars = max(4, int((w - 12) / 7.2))
    text = v.name if len(v.name) <= chars else v.name[:chars - 1] + "…"
    return {"name": v.name, "text": text, "kind": kind, "x": round(x, 1), "y": round(v.y, 1), "w": round(w, 1), "h": NODE_H}


def _edge_json(i: int, e: _Edge, geo: _Geometry) -> dict[str, Any]:
    segs = geo.segments(i, e)
    d = f"M{segs[0][0][0]:.1f},{segs[0][0][1]:.1f}" + "".join(
        f" C{s[1][0]:.1f},{s[1][1]:.1f} {s[2][0]:.1f},{s[2][1]:.1f} {s[3][0]:.1f},{s[3][1]:.1f}" for s in _joined(segs))
    text = "<1%" if e.p < 0.005 else f"{100 * e.p:.0f}%"
    return {"from": e.src, "to": e.dst, "p": round(e.p, 6), "count": e.count, "kind": e.kind, "d": d,
            "stroke": round(0.8 + 3.5 * e.p, 2), "_samples": _samples(segs),
            "label": {"text": text, "w": round(CHAR_W * len(text) + 6, 1), "h": LABEL_H, "x": 0.0, "y": 0.0, "shown": False}}


def _joined(segs: list[tuple[tuple[float, float], ...]]) -> list[tuple[tuple[float, float], ...]]:
    """Segments in path order (each starts where the previous ended)."""
    out, rest = [segs[0]], segs[1:]
    while rest:
        end = out[-1][3]
        k = min(range(len(rest)), key=lambda j: abs(rest[j][0][0] - end[0]) + abs(rest[j][0][1] - end[1]))
        out.append(rest.pop(k))
    return out


def _bezier(s: tuple[tuple[float, float], ...], t: float) -> tuple[float, float]:
    u = 1 - t
    return (u ** 3 * s[0][0] + 3 * u * u * t * s[1][0] + 3 * u * t * t * s[2][0] + t ** 3 * s[3][0],
            u ** 3 * s[0][1] + 3 * u * u * t * s[1][1] + 3 * u * t * t * s[2][1] + t ** 3 * s[3][1])


CANDIDATE_T = (0.5, 0.35, 0.65, 0.22, 0.78, 0.1, 0.9)


def _samples(segs: list[tuple[tuple[float, float], ...]]) -> dict[str, Any]:
    """Label candidate points (first segment first: near the source) and points along the whole edge."""
    candidates = [_bezier(s, t) for s in segs for t in CANDIDATE_T]
    along = [_bezier(s, t / 12) for s in segs for t in range(13)]
    return {"candidates": candidates, "along": along}


def _place_labels(edges: list[dict[str, Any]], nodes: list[dict[str, Any]], width: float, height: float) -> None:
    """Strongest first: each label at the free candidate crossing the fewest other edges; no free spot → hover only."""
    boxes = [(n["x"] - 2, n["y"] - 2, n["x"] + n["w"] + 2, n["y"] + n["h"] + 2) for n in nodes]
    pts = [pt for e in edges for pt in e["_samples"]["along"]]
    along = (np.array(pts, dtype=float).reshape(-1, 2),
             np.repeat(np.arange(len(edges)), [len(e["_samples"]["along"]) for e in edges]))
    by_src: dict[str, int] = {}
    for idx in sorted(range(len(edges)), key=lambda k: (-edges[k]["p"], edges[k]["from"], edges[k]["to"])):
        e, label = edges[idx], edges[idx]["label"]
        by_src[e["from"]] = by_src.get(e["from"], 0) + 1
        major = e["p"] >= LABEL_MIN_P and by_src[e["from"]] <= LABELS_PER_STATE
        spots = [_spot(pt, label, e["kind"]) for pt in e["_samples"]["candidates"]]
        inside = [b for b in spots if b[0] >= 0 and b[1] >= 0 and b[2] <= width and b[3] <= height]
        free = [b for b in inside if not any(_overlap(b, o) for o in boxes)]
        best = min(free, key=lambda b: _crossings(b, along, idx)) if free else (inside or spots)[0]
        label["x"], label["y"] = round((best[0] + best[2]) / 2, 1), round((best[1] + best[3]) / 2, 1)
        label["shown"] = bool(major and free)
        if label["shown"]:
            boxes.append(best)
    for e in edges:
        del e["_samples"]


def _spot(pt: tuple[float, float], label: Mapping[str, Any], kind: str) -> tuple[float, float, float, float]:
    x, y = pt
    if kind == "loop":  # beside the loop's top, not on the box
        y -= label["h"] / 2
    return (x - label["w"] / 2, y - label["h"] / 2, x + label["w"] / 2, y + label["h"] / 2)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _crossings(box: tuple[float, float, float, float], along: tuple[Any, Any], own: int) -> int:
    """How many sample points of other edges fall inside the box (a label over another edge misleads)."""
    pts, owner = along
    inside = (pts[:, 0] > box[0]) & (pts[:, 0] < box[2]) & (pts[:, 1] > box[1]) & (pts[:, 1] < box[3]) & (owner != own)
    return int(np.count_nonzero(inside))


def caption(graph: Mapping[str, Any]) -> str:
    """What the drawing leaves out and how to read it."""
    hidden = sum(1 for e in graph["edges"] if not e["label"]["shown"])
    return (f"Each arrow: the share of the moves out of a step that go to the next. Per step its {graph['max_out_edges']} "
            f"strongest moves of at least {100 * graph['min_edge_p']:.0f}% (at least its strongest one) and its "
            f"self-loop are drawn ({len(graph['edges'])} of "
            f"{graph['edges_total']}; the JSON output has them all); dashed arrows go back. "
            f"{hidden} smaller shares show when you point at their arrow.")


def edge_title(edge: Mapping[str, Any]) -> str:
    return f"{edge['from']} → {edge['to']}: {edge['label']['text']} of the moves out of {edge['from']} ({edge['count']:,} moves)"
