"""Terminal rendering of the feed: one numbered block per insight, best first."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from engine.app.render import power as power_footer
from engine.app.render import status
from engine.app.render.common import headline, narrative_text, stats_line


def render(items: Sequence[Mapping[str, Any]], power: Sequence[Mapping[str, Any]] | None = None,
           empty: Sequence[Mapping[str, Any]] | None = None) -> str:
    """`empty`: engine.app.render.status rows, said when there is no item (why nothing yet)."""
    footer = "" if power is None else "\n" + "\n".join(power_footer.text_lines(power)) + "\n"
    return _items(items) + ("" if items else _why(empty)) + footer


def _why(rows: Sequence[Mapping[str, Any]] | None) -> str:
    wrapped = [textwrap.fill(line, width=96, initial_indent="  ", subsequent_indent="    ")
               for line in status.lines(rows or [])]
    return "".join(line + "\n" for line in wrapped)


def _items(items: Sequence[Mapping[str, Any]]) -> str:
    if not items:
        return "No insights: no finding passed its thresholds and the FDR control.\n"
    blocks = []
    for item in items:
        f = item["finding"]
        lines = [f"{item['rank']:>2}. [{item['score']:.3f}] {f['confidence_label']:<6} {f['type']}: {headline(item)}",
                 f"    {stats_line(item)}  id {str(item.get('insight_id', ''))[:12]}"]
        text = narrative_text(item)
        if text:
            lines += textwrap.wrap(text, width=96, initial_indent="    ", subsequent_indent="    ")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
