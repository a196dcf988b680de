"""Infer a journey when `journeygraph run EVENTS` is given no config, the way a product person would read the data.

Raw event names become states. The start state is the event most actors do
first. Conversion and failure candidates are read from names *and* behaviour:
a name made of success words (`passed`, `success`, `completed`, `purchase`,
`order(s)`, `subscription`, `activated`, …) or failure words (`lost`,
`failed`, `cancel`, `declined`, …), backed by how the event behaves: the share
of actors who reach it and how often it is the last thing an actor does. An
event with no telling name that almost always ends a journey and is reached by
a minority is offered as a conversion only when no name says one. Window and
inactivity come from the observed gaps between one actor's events and the
spread of actors' spans, capped so the data's end does not censor everything.
Every guess is reported with one line of why (`Config.inferred`), and
`engine.config.to_raw` turns the result into the journeygraph.yaml the
workspace keeps.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import duckdb

from engine.config import Config, JourneyConfig, Outcome
from engine.durations import format_duration
from ontology.errors import ConfigError

# tier 1: words that name an outcome; tier 2: words that may name a step ("profile_completed")
_SUCCESS = {"passed": 1, "pass": 1, "success": 1, "succeeded": 1, "successful": 1, "purchase": 1, "purchased": 1,
            "purchases": 1, "order": 1, "orders": 1, "ordered": 1, "paid": 1, "converted": 1, "conversion": 1,
            "subscription": 1, "subscribed": 1, "subscribe": 1, "approved": 1, "won": 1, "booked": 1, "upgraded": 1,
            "upgrade": 1, "activated": 1, "checkout_completed": 1, "completed": 2, "complete": 2, "finished": 2, "done": 2}
_FAILURE = {"lost", "fail", "failed", "failure", "cancel", "cancelled", "canceled", "cancellation", "declined", "decline",
            "rejected", "reject", "denied", "abandoned", "churned", "churn", "expired", "refunded", "unsubscribed"}
_OUTCOME_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_ .:-]*$")  # the config schema's name pattern
SESSION_TIMEOUT_S = 1800  # the shortest inactivity that ends a journey: web analytics' usual session timeout
_NICE = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 2 * 86400, 3 * 86400, 7 * 86400,
         14 * 86400, 30 * 86400, 60 * 86400, 90 * 86400)


@dataclass(frozen=True)
class EventStats:
    name: str
    actors: int  # actors who did it at least once
    reach: float  # share of all actors
    ends: float  # share of those actors whose last event it is


def tokens(name: str) -> tuple[str, ...]:
    """Lower-case words of an event name: snake_case, kebab, spaces, dots, colons and camelCase split."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return tuple(t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t)


def success_tier(name: str) -> int | None:
    """1 for a name that says an outcome, 2 for one that may be a step, None when it says neither or says failure."""
    words = tokens(name)
    if any(w in _FAILURE for w in words):
        return None
    tiers = [_SUCCESS[w] for w in words if w in _SUCCESS]
    if "_".join(words[-2:]) == "checkout_completed":
        tiers.append(1)
    return min(tiers) if tiers else None


def is_failure(name: str) -> bool:
    return any(w in _FAILURE for w in tokens(name))


def nice_duration(seconds: float) -> int:
    """The smallest round duration (1m, 2m, 5m, …, 90d) at or above `seconds`."""
    return next((d for d in _NICE if d >= seconds), _NICE[-1])


def nice_below(seconds: float) -> int:
    """The largest round duration at or below `seconds` (at least 1m)."""
    return max((d for d in _NICE if d <= seconds), default=_NICE[0])


def human(seconds: float) -> str:
    """A span for a sentence: 55 s, 3.9 min, 5.2 h, 27.6 days."""
    for size, unit in ((86400, "days"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _event_stats(con: duckdb.DuckDBPyConnection) -> list[EventStats]:
    rows = con.execute("""
        WITH lasts AS (SELECT tenant_id, actor_id, arg_max(event_name, seq) AS last_event FROM events GROUP BY ALL),
        reached AS (SELECT DISTINCT tenant_id, actor_id, event_name FROM events),
        total AS (SELECT count(*) AS n FROM lasts)
        SELECT r.event_name, count(*) AS actors, count(*) / any_value(total.n) AS reach,
               avg((l.last_event = r.event_name)::INTEGER) AS ends
        FROM reached r JOIN lasts l USING (tenant_id, actor_id), total
        GROUP BY r.event_name ORDER BY actors DESC, r.event_name""").fetchall()
    return [EventStats(name, int(n), float(reach), float(ends)) for name, n, reach, ends in rows]


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _why(stat: EventStats) -> str:
    return f"reached by {stat.actors} actors ({_pct(stat.reach)}), the last event of {_pct(stat.ends)} of them"


def conversion_guess(stats: list[EventStats], start: str) -> tuple[EventStats | None, str]:
    """The conversion event and one line of why: the best-named success event, else a terminal minority event."""
    named = [(success_tier(s.name), s) for s in stats if s.name != start]
    named = [(tier, s) for tier, s in named if tier is not None and (tier == 1 or s.ends >= 0.5)]
    if named:
        tier, best = min(named, key=lambda ts: (ts[0], -ts[1].ends, -ts[1].actors, ts[1].name))
        word = "says an outcome" if tier == 1 else "says completion and it ends journeys"
        others = [s.name for _, s in named if s is not best][:3]
        also = f"; other candidates: {', '.join(others)}" if others else ""
        return best, f"conversion: {best.name!r} (its name {word}; {_why(best)}){also}"
    behaved = [s for s in stats if s.name != start and not is_failure(s.name) and s.ends >= 0.95 and 0.01 <= s.reach <= 0.5]
    if behaved:
        best = max(behaved, key=lambda s: (s.ends, s.actors, s.name))
        return best, (f"conversion: {best.name!r} from behaviour only, no name says success ({_why(best)}); "
                      "check it and name the outcome in journeygraph.yaml")
    return None, ("conversion: none found (no event name reads like passed/success/completed/purchase/order/"
                  "subscription, and none ends most journeys it is in); only drop-off is measured")


def _converting_after(con: duckdb.DuckDBPyConnection, event: str, conversion: str) -> float:
    """Share of the actors who did `event` that reach `conversion` after their first `event`."""
    share = con.execute("""
        WITH f AS (SELECT tenant_id, actor_id, min(seq) AS at FROM events WHERE event_name = ? GROUP BY ALL)
        SELECT avg((EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = f.tenant_id AND e.actor_id = f.actor_id
                                                    AND e.event_name = ? AND e.seq > f.at))::INTEGER) FROM f""",
                        [event, conversion]).fetchall()[0][0]
    return float(share or 0.0)


def failure_guess(con: duckdb.DuckDBPyConnection, stats: list[EventStats], start: str,
                  conversion: str | None) -> tuple[EventStats | None, str | None]:
    """A failure event: its name says failure, and it ends journeys (the last event of at least half its actors)
    or, when there is a conversion, almost no one (at most 2%) converts after it."""
    named = [s for s in stats if s.name not in (start, conversion) and is_failure(s.name)]
    for stat in sorted(named, key=lambda s: (-s.actors, s.name)):
        if stat.ends >= 0.5:
            return stat, f"failure: {stat.name!r} (its name says failure; {_why(stat)})"
        after = _converting_after(con, stat.name, conversion) if conversion else 1.0
        if after <= 0.02:
            return stat, (f"failure: {stat.name!r} (its name says failure; {_why(stat)}; "
                          f"{_pct(after)} of them reach {conversion!r} after it)")
    if named:
        return None, (f"failure: none used; {named[0].name!r} reads like failure but is the last event of only "
                      f"{_pct(named[0].ends)} of its actors, and some convert after it")
    return None, None


def _timing(con: duckdb.DuckDBPyConnection) -> tuple[int, int, str]:
    """(window, inactivity, why) from the gaps between one actor's events and the spread of actors' spans."""
    found = con.execute("""
        WITH gaps AS (SELECT epoch(ts) - epoch(lag(ts) OVER (PARTITION BY tenant_id, actor_id ORDER BY seq)) AS gap FROM events),
        spans AS (SELECT epoch(max(ts)) - epoch(min(ts)) AS span FROM events GROUP BY tenant_id, actor_id)
        SELECT (SELECT quantile_cont(gap, 0.99) FROM gaps WHERE gap > 0), (SELECT quantile_cont(span, 0.9) FROM spans),
               (SELECT epoch(max(ts)) - epoch(min(ts)) FROM events)""").fetchone() or (0, 0, 0)
    gap99, span90, data_span = (float(x or 0) for x in found)
    inactive = min(14 * 86400, max(SESSION_TIMEOUT_S, nice_duration(2 * gap99)))
    cap = nice_below(max(3600, data_span / 2))
    window = min(cap, nice_duration(max(1.5 * span90, 2 * inactive)))
    window = max(window, min(inactive, cap))
    capped = "; no longer than the window, as a longer gap cannot occur inside it" if inactive > window else ""
    inactive = min(inactive, window)
    why = (f"window {format_duration(int(window))}, dropped after {format_duration(inactive)} inactive "
           f"(99% of one actor's consecutive events are at most {human(gap99)} apart, and at least 30 min, the usual "
           f"session timeout, is allowed{capped}; 90% of actors "
           f"span at most {human(span90)}; the data spans {human(data_span)}; the window is at most half of that)")
    return int(window), inactive, why


def _start(con: duckdb.DuckDBPyConnection) -> tuple[str, str]:
    row = con.execute("""
        WITH firsts AS (SELECT arg_min(event_name, seq) AS first_event FROM events GROUP BY tenant_id, actor_id)
        SELECT first_event, count(*) AS n, sum(count(*)) OVER () AS total FROM firsts
        GROUP BY 1 ORDER BY n DESC, first_event LIMIT 1""").fetchone()
    if row is None:
        raise ConfigError("no accepted events to infer a journey from; see the rejected rows above, or run "
                          "`journeygraph inspect FILE` to see how the file is read")
    return row[0], f"start state: {row[0]!r} (the first event of {row[1]} of {row[2]} actors, {_pct(row[1] / row[2])})"


def outcome_name(event: str, fallback: str, taken: tuple[str, ...]) -> str:
    """The event's own name for its outcome (so the feed says "passed", not "converted") when the config allows it."""
    ok = _OUTCOME_NAME.match(event) and len(event) <= 64 and event not in taken
    return event if ok else fallback


def _quote(name: str) -> str:
    return "'" + name.replace("'", "''") + "'"


def infer_journey(con: duckdb.DuckDBPyConnection, cfg: Config) -> Config:
    """Return cfg with one inferred raw-level journey and a line of why for each guess."""
    start, start_why = _start(con)
    stats = _event_stats(con)
    conversion, conversion_why = conversion_guess(stats, start)
    failure, failure_why = failure_guess(con, stats, start, conversion.name if conversion else None)
    window, inactive, timing_why = _timing(con)
    outcomes = []
    won = outcome_name(conversion.name, "converted", ("dropped",)) if conversion else None
    if conversion and won:
        outcomes.append(Outcome(name=won, when=f"event_name = {_quote(conversion.name)}"))
    if failure:
        lost = outcome_name(failure.name, "failed", ("dropped", won or ""))
        outcomes.append(Outcome(name=lost, when=f"event_name = {_quote(failure.name)}"))
    outcomes.append(Outcome(name="dropped", inactive_for_s=inactive))
    journey = JourneyConfig(name="journey", start=start, outcomes=tuple(outcomes), level="raw", window_s=window,
                            conversion=won)
    notes = (f"no config: states are raw event names ({len(stats)} distinct)", start_why, conversion_why,
             *((failure_why,) if failure_why else ()), timing_why,
             ("the inferred config is saved as journeygraph.yaml in the workspace; copy and edit it, "
              "then `journeygraph run -c journeygraph.yaml`"))
    return dataclasses.replace(cfg, journeys=(journey,), inferred=notes)
