"""The detection-power footer: what the data could have revealed, so that silence in the feed means something.

Rows come from `detectors.regression.power_map_for` (one per comparison and edge: n before/after, the
smallest change detectable with 80 % power, a status); here they are summarised per comparison for
the text, Markdown and HTML footers. `/api/power` serves the rows themselves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

BUSIEST = 5  # edges listed per comparison in the footer (the API has them all)
TITLE = "Detection power: what the data could have shown"


def _words(comparison: str) -> str:
    kind, _, name = comparison.partition(":")
    return f"release {name}" if kind == "release" else f"latest period (from {name[:10]})" if kind == "period" else comparison


def edge_words(edge: str) -> str:
    from ontology.names import entity_states

    return " → ".join(entity_states(edge)) if edge.startswith("edge:") else edge


def _status_word(status: str) -> str:
    return status.split(" (")[0]


def summarise(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (journey, comparison): edge counts by status, the range of detectable changes, the busiest edges."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((str(r.get("journey", "")), str(r["comparison"])), []).append(r)
    out = []
    for (journey, comparison), members in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1].startswith("release:"), kv[0][1])):
        counts = {w: sum(1 for r in members if _status_word(r["status"]) == w)
                  for w in ("regression reported", "no change detected", "too early to tell")}
        mdes = sorted(float(r["detectable_change"]) for r in members if r.get("detectable_change") is not None)
        busiest = sorted(members, key=lambda r: (-_moves(r), r["edge"]))[:BUSIEST]
        out.append({"journey": journey, "comparison": comparison, "title": _words(comparison), "edges": len(members),
                    "counts": counts, "detectable_min": mdes[0] if mdes else None,
                    "detectable_max": mdes[-1] if mdes else None, "busiest": busiest,
                    "alpha": members[0].get("alpha"), "power": members[0].get("power")})
    return out


def headline(group: Mapping[str, Any]) -> str:
    c = group["counts"]
    spread = ("" if group["detectable_min"] is None else
              f"; changes of {_pts(group['detectable_min'])} to {_pts(group['detectable_max'])} were detectable")
    return (f"{group['title']} ({group['journey']}): {group['edges']} edges — {c['regression reported']} regression(s) "
            f"reported, {c['no change detected']} with no change detected, {c['too early to tell']} too early to tell"
            + spread)


def _moves(r: Mapping[str, Any]) -> float:
    """The moves along the edge on both sides: the busiest edges are the ones a reader cares about first."""
    return sum(float(r[p] or 0) * int(r[n]) for p, n in (("p_before", "n_before"), ("p_after", "n_after")))


def mde_words(r: Mapping[str, Any]) -> str:
    return "n/a" if r.get("detectable_change") is None else "≥ " + _pts(r["detectable_change"])


def status_words(r: Mapping[str, Any]) -> str:
    return _status_word(r["status"])


def row_words(r: Mapping[str, Any]) -> str:
    return (f"{edge_words(r['edge'])}: n = {r['n_before']:,} before, {r['n_after']:,} after; "
            f"detectable change {mde_words(r)}; {status_words(r)}")


def note(groups: Sequence[Mapping[str, Any]]) -> str:
    if not groups:
        return ("No edge could be compared yet (no release comparison, and no resolved steps in the latest period): "
                "the feed's silence about regressions says nothing so far.")
    g = groups[0]
    return (f"Detectable change: the smallest move of an edge's share the test finds with {float(g['power'] or 0.8):.0%} "
            f"power at α = {g['alpha']} (the FDR level, so the optimistic end). GET /api/power lists every edge.")


def text_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    groups = summarise(rows)
    lines = [TITLE + f" (the {BUSIEST} busiest edges per comparison)"]
    for g in groups:
        lines.append(f"  {headline(g)}")
        lines.extend(f"    {row_words(r)}" for r in g["busiest"])
    return lines + [f"  {note(groups)}"]


def _pts(value: Any) -> str:
    return f"{100 * float(value):.1f} pts"


def payload(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`/api/power`: every edge's row, and per comparison the footer's headline and busiest edges in words."""
    groups = summarise(rows)
    return {"edges": list(rows), "note": note(groups), "title": TITLE,
            "comparisons": [{**{k: v for k, v in g.items() if k != "busiest"}, "headline": headline(g),
                             "busiest": [{**r, "edge_words": edge_words(r["edge"]), "detectable_words": mde_words(r),
                                          "status_words": status_words(r)} for r in g["busiest"]]} for g in groups]}
