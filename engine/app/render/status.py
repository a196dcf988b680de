"""Why a feed is empty: what was measured, how much of it could be tested, and what more data would show.

Why: a new user's first run on a small export (OTTO's 20 sessions: 10 completed, 10 still open)
used to end in one line, "no finding passed its thresholds", with the conversion event named only
in the run summary. An empty feed now says, per journey (its newest all-data snapshot): the journey
as inferred or configured (start, conversion, how a journey is lost, window), how many journeys
completed, converted and are still open at the data's end (censored), the detectors' sample floors
(`min_n`, raised to `privacy.min_group_size`) against the completed journeys, and the power of the
comparison most detectors make (conversion of the journeys reaching a step against the others): the
smallest change a step reached by half the completed journeys would reveal with 80 % power, and how
many completed journeys a 10-point change needs (engine.power).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from engine import power
from engine.durations import format_duration

TARGET_CHANGE = 0.10  # the change (share of journeys) the "how much more data" line sizes for
TITLE = "No insights yet"


def explain(payloads: Sequence[Mapping[str, Any]], cfg: Any) -> list[dict[str, Any]]:
    """One row of plain numbers per journey, from its newest all-data snapshot payload and the run's config."""
    floors = _floors(cfg)
    alpha = float(dict(cfg.detectors).get("fdr_q", 0.05))
    return [_row(p, cfg, floors, alpha) for p in payloads]


def _floors(cfg: Any) -> dict[str, int]:
    """Each detector's sample floor: its min_n (or min_count), never below privacy.min_group_size."""
    from detectors.registry import default_registry, settings_for

    out = {}
    for cls in default_registry():
        conf = settings_for(cls, cfg.detector_settings(cls.name))
        n = getattr(conf, "min_n", getattr(conf, "min_count", 0))
        out[cls.name] = max(int(n), int(cfg.privacy.min_group_size))
    return out


def _row(p: Mapping[str, Any], cfg: Any, floors: dict[str, int], alpha: float) -> dict[str, Any]:
    completed, conv = int(p["completed"]), p.get("conversion_outcome")
    converted = int(p.get("outcome_counts", {}).get(conv, 0)) if conv else 0
    rate = converted / completed if completed and conv else None
    half = completed / 2
    mde = (float(power.minimum_detectable_change(rate, half, half, alpha)[0])
           if rate is not None and completed >= 2 else math.nan)
    per_group = power.journeys_needed(rate, TARGET_CHANGE, alpha) if rate is not None else None
    return {"journey": p["journey"], "start": p["start_state"], "conversion": conv, "outcomes": _outcomes(p, cfg),
            "window": _window(p, cfg), "data_end": str(p["window"]["end"])[:10], "journeys": int(p["journeys"]),
            "completed": completed, "censored": int(p["censored"]), "converted": converted, "rate": rate,
            "floors": floors, "alpha": alpha, "power": power.POWER,
            "detectable_change": None if math.isnan(mde) else mde,
            "completed_needed": None if per_group is None else 2 * per_group}


def _journey_cfg(p: Mapping[str, Any], cfg: Any) -> Any:
    return next((j for j in cfg.journeys if j.name == p["journey"]), None)


def _outcomes(p: Mapping[str, Any], cfg: Any) -> list[str]:
    """Each outcome in words: the conversion marked, an inactivity drop-off with its timeout."""
    jc = _journey_cfg(p, cfg)
    rules = {o.name: o for o in jc.outcomes} if jc else {}
    out = []
    for name in sorted(p["outcomes"], key=lambda o: o != p.get("conversion_outcome")):  # the conversion first
        rule = rules.get(name)
        how = (f" ({format_duration(rule.inactive_for_s)} without an event)" if rule and rule.inactive_for_s
               else " (the conversion)" if name == p.get("conversion_outcome") else "")
        out.append(f"\"{name}\"{how}")
    return out


def _window(p: Mapping[str, Any], cfg: Any) -> str | None:
    jc = _journey_cfg(p, cfg)
    return format_duration(jc.window_s) if jc else None


def lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The explanation as sentences, one list per journey flattened; the renderers indent or wrap them."""
    out = []
    for r in rows:
        out.append(f"Journey \"{r['journey']}\": starts at \"{r['start']}\" and ends in " + " or ".join(r["outcomes"])
                   + (f", within {r['window']} of its start." if r["window"] else "."))
        out.append(_counts(r))
        out.append(_floor_words(r))
        out.append(_power_words(r))
    return out


def _counts(r: Mapping[str, Any]) -> str:
    conv = (f" ({r['converted']} reached \"{r['conversion']}\", {100 * r['rate']:.1f}%)"
            if r["rate"] is not None else "")
    open_ = (f", {r['censored']} still open when the data ends on {r['data_end']} (censored: their outcome is not "
             "known yet, so they are left out)" if r["censored"] else "")
    return f"{r['journeys']:,} journeys: {r['completed']:,} completed{conv}{open_}."


def _floor_words(r: Mapping[str, Any]) -> str:
    floors = r["floors"]
    low = min(floors, key=lambda k: (floors[k], k))
    high = max(floors, key=lambda k: (floors[k], k))
    span = (f"at least {floors[low]} ({low})" if floors[low] == floors[high]
            else f"at least {floors[low]} ({low}) to {floors[high]} ({high})")
    if r["completed"] < floors[low]:
        return (f"Too few to test: the detectors need {span} journeys behind a step, path or edge before they test "
                f"it; this data has {r['completed']:,} completed journeys.")
    return (f"Enough to test some steps ({span} journeys behind each), and no finding passed its thresholds and "
            "the false-discovery control.")


def _power_words(r: Mapping[str, Any]) -> str:
    if r["rate"] is None:
        return "No conversion outcome is defined, so conversion changes cannot be tested; name one in journeygraph.yaml."
    test = f"{r['power']:.0%} power, α = {r['alpha']}"
    found = (f"a step reached by half of them shows up only if it moves conversion by at least "
             f"{100 * r['detectable_change']:.1f} points ({test})" if r["detectable_change"] is not None
             else f"no change in conversion between the journeys that reach a step and the others is detectable ({test})")
    need = ("" if r["completed_needed"] is None else
            f"; about {r['completed_needed']:,} completed journeys would reveal a {100 * TARGET_CHANGE:.0f}-point change "
            f"from {100 * r['rate']:.1f}%. Run it on more data (a longer export, or more actors)")
    return f"With {r['completed']:,} completed journeys, {found}{need}."
