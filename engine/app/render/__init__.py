"""Feed renderers: terminal text, Markdown, canonical JSON and a self-contained HTML report.

Every renderer takes the feed items (the dicts `engine.feed.feed_item` makes,
the same shape `journeygraph feed --format json` prints) so stored feeds
render without recomputation; the HTML report also takes the all-data
snapshot for its journey graph and bar charts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.app.render import html, md, text
from engine.app.render import json as json_render

FORMATS = ("text", "json", "md", "html")


def render(items: Sequence[Mapping[str, Any]], fmt: str = "text", snapshot: Any = None, title: str = "journeygraph feed",
           power: Sequence[Mapping[str, Any]] | None = None, metrics: Mapping[str, Any] | None = None,
           empty: Sequence[Mapping[str, Any]] | None = None) -> str:
    """Render feed items in one of FORMATS; an unknown format is refused with the list.

    `power`: detection-power rows (detectors.regression.power_map_for) for the footer of text, md and html;
    `metrics`: the html snapshot's stored `snapshot --format json` (engine.state_metrics), so it solves nothing;
    `empty`: why there is no item (engine.app.render.status rows), said by text, md and html when the feed is empty.
    """
    renderers: dict[str, Callable[[], str]] = {
        "text": lambda: text.render(items, power=power, empty=empty),
        "json": lambda: json_render.render(items),
        "md": lambda: md.render(items, title=title, power=power, empty=empty),
        "html": lambda: html.render(items, snapshot=snapshot, title=title, power=power, metrics=metrics, empty=empty),
    }
    if fmt not in renderers:
        raise ValueError(f"unknown feed format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return renderers[fmt]()
