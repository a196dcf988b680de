"""Markdown rendering of the feed: a summary table, then one section per insight.

Text that comes from the data (names in headlines, narratives) is escaped (`escape_markup`): Markdown
passes raw HTML through, so a state named `<script>` would otherwise run wherever the feed is shown.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from engine.app.render.common import escape_markup, headline, narrative_text, num, pct, stats_line


def _cell(text: str) -> str:
    return escape_markup(text).replace("|", "\\|").replace("\n", " ")


def render(items: Sequence[Mapping[str, Any]], title: str = "journeygraph feed") -> str:
    lines = [f"# {title}", ""]
    if not items:
        return "\n".join(lines + ["No insights: no finding passed its thresholds and the FDR control.", ""])
    lines += ["| # | score | confidence | type | finding | n | q |", "|---|---|---|---|---|---|---|"]
    for item in items:
        f = item["finding"]
        lines.append(f"| {item['rank']} | {item['score']:.3f} | {f['confidence_label']} | {f['type']} | "
                     f"{_cell(headline(item))} | {f.get('n', '')} | {num(f.get('q_value'))} |")
    lines.append("")
    for item in items:
        f = item["finding"]
        lines += [f"## {item['rank']}. {_cell(headline(item))}", "",
                  f"*{f['type']}* · {f['detector']} · confidence {f['confidence_label']} ({num(f['confidence'], 2)})"
                  f" · reach {pct(f.get('reach'))}", "", f"`{stats_line(item)}`", ""]
        text = escape_markup(narrative_text(item))
        if text:
            lines += [text, ""]
        lines += [f"<sub>insight {item['insight_id']} · finding {f['finding_id']} · snapshot {f['snapshot_id']}</sub>", ""]
    return "\n".join(lines)
