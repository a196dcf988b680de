"""Markdown rendering of the feed: a summary table, then one section per insight.

Text that comes from the data (names in headlines, narratives) is escaped (`escape_markup`): Markdown
passes raw HTML through, so a state named `<script>` would otherwise run wherever the feed is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engine.app.render import power as power_footer
from engine.app.render import status
from engine.app.render.common import escape_markup, headline, narrative_text, num, pct, stats_line


def _cell(text: str) -> str:
    return escape_markup(text).replace("|", "\\|").replace("\n", " ")


def render(items: Sequence[Mapping[str, Any]], title: str = "journeygraph feed",
           power: Sequence[Mapping[str, Any]] | None = None, empty: Sequence[Mapping[str, Any]] | None = None) -> str:
    why = "" if items else "".join(f"- {escape_markup(line)}\n" for line in status.lines(empty or [])) + "\n"
    return _items(items, title) + why + ("" if power is None else "\n".join(_power(power)) + "\n")


def _power(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The detection-power footer: one line per comparison, then its busiest edges as a table."""
    groups = power_footer.summarise(rows)
    lines = [f"## {power_footer.TITLE}", ""]
    for g in groups:
        lines += [_cell(power_footer.headline(g)), "", "| busiest edges | n before | n after | detectable change | status |",
                  "|---|---|---|---|---|"]
        lines += [f"| {_cell(power_footer.edge_words(r['edge']))} | {r['n_before']:,} | {r['n_after']:,} | "
                  f"{power_footer.mde_words(r)} | "
                  f"{_cell(power_footer.status_words(r))} |" for r in g["busiest"]]
        lines.append("")
    return lines + [_cell(power_footer.note(groups)), ""]


def _items(items: Sequence[Mapping[str, Any]], title: str) -> str:
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
