"""Hostile-input helpers: a small clean event stream, a config for it, and an independent per-line recount.

The recount (`recount`) implements the documented ingest/normalise rules in plain Python without
calling engine code, so a test can compare the engine's buckets with it line for line.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.config import Config, from_dict

START = dt.datetime(2026, 1, 5)
STEPS = ("signup", "tour", "project")
BOT = re.compile("bot|crawler|spider|healthcheck|uptime|pingdom", re.IGNORECASE)  # engine.config.BotRules defaults
TS_MIN, TS_MAX = dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1)


def base_events(users: int = 120) -> list[dict[str, Any]]:
    """users × signup → tour (→ import) → project (→ purchase for every third), 80 minutes apart, one event a minute.

    Every buyer imports and few others do: an activation driver for the detectors to find.
    """
    events: list[dict[str, Any]] = []
    for u in range(users):
        t0 = START + dt.timedelta(minutes=80 * u)
        names = STEPS[:2] + (("import",) if u % 3 == 0 or u % 7 == 0 else ()) + STEPS[2:] + (
            ("purchase",) if u % 3 == 0 else ())
        for k, name in enumerate(names):
            ts = (t0 + dt.timedelta(minutes=k)).strftime("%Y-%m-%dT%H:%M:%SZ")
            events.append({"event_id": f"e{u}_{k}", "user_id": f"u{u}", "event_name": name, "timestamp": ts,
                           "platform": "android" if u % 2 else "ios"})
    return events


CONFIG: dict[str, Any] = {
    "journeys": {"activation": {"start": "signup", "window": "1h",
                                "outcomes": {"converted": "event_name = 'purchase'", "dropped": {"inactive_for": "30m"}}}},
    "segments": {"platform": {"column": "platform"}}}


def config() -> Config:
    return from_dict(CONFIG)


def config_file(path: Path, **extra: Any) -> Path:
    """CONFIG (plus top-level `extra` keys) as a config file (JSON is YAML)."""
    path.write_text(json.dumps({**CONFIG, **extra}))
    return path


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    data = b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines)
    path.write_bytes(data)
    return path


def dumps(events: list[dict[str, Any]]) -> list[str | bytes]:
    return [json.dumps(e) for e in events]


# --- independent recount ---------------------------------------------------------------------


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))
    return None if s == "" else s


def _parse_ts(s: str | None) -> dt.datetime | None:
    if s is None:
        return None
    out: dt.datetime | None = None
    try:
        x = float(s)
        out = dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=int(x)) if abs(x) < 1e13 else None
    except (ValueError, OverflowError):
        try:
            d = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            out = d.astimezone(dt.UTC).replace(tzinfo=None) if d.tzinfo else d
        except ValueError:
            return None
    return out if out is not None and TS_MIN <= out < TS_MAX else None


def _classify_line(raw: bytes) -> tuple[str | None, dict[str, Any] | None]:
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        return "bad_encoding", None
    if not text.lstrip(" \t\r\n").startswith("{"):
        return "not_json", None
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError):
        return "not_json", None
    return _classify_doc(doc)


def _classify_doc(doc: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    ts_text, name = _text(doc.get("timestamp")), _text(doc.get("event_name"))
    actor = _text(doc.get("user_id")) or _text(doc.get("actor_id")) or _text(doc.get("anonymous_id"))
    ts = _parse_ts(ts_text)
    reason = ("missing_timestamp" if ts_text is None else "bad_timestamp" if ts is None
              else "missing_event_name" if name is None else "missing_actor" if actor is None else None)
    if reason:
        return reason, None
    return None, {"eid": _text(doc.get("event_id")) or "h:" + json.dumps(doc, sort_keys=True), "ts": ts, "actor": actor,
                  "ua": _text(doc.get("user_agent")) or ""}


def _jsonl_rows(path: Path) -> Iterator[tuple[int, tuple[str | None, dict[str, Any] | None]]]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20_000))  # json's scanner recurses per nesting level
    try:
        for n, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if raw.strip(b" \t\r\n") != b"":
                yield n, _classify_line(raw.rstrip(b"\r"))
    finally:
        sys.setrecursionlimit(limit)


def _csv_rows(path: Path) -> Iterator[tuple[int, tuple[str | None, dict[str, Any] | None]]]:
    """CSV records numbered as the engine numbers them: record index + 1 (the header is line 1)."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        for n, row in enumerate(csv.DictReader(handle), start=2):
            yield n, _classify_doc({k: v for k, v in row.items() if v != ""})


def recount(path: Path) -> dict[int, str]:
    """line -> bucket (a quarantine reason, duplicate, bot or accepted) for a JSONL or CSV file, by the documented rules.

    No late rule: the hostile streams carry no received_at and run on a fresh workspace.
    """
    out: dict[int, str] = {}
    events: dict[int, dict[str, Any]] = {}
    for n, (reason, rec) in (_csv_rows(path) if path.suffix == ".csv" else _jsonl_rows(path)):
        if reason:
            out[n] = reason
        else:
            events[n] = rec  # type: ignore[assignment]
    by_id: dict[str, list[int]] = collections.defaultdict(list)
    for n, e in events.items():
        by_id[e["eid"]].append(n)
    for lines in by_id.values():
        lines.sort(key=lambda n: (events[n]["ts"], n))
        for k, n in enumerate(lines):
            dup = k > 0 and events[n]["ts"] - events[lines[0]]["ts"] <= dt.timedelta(hours=24)
            out[n] = "duplicate" if dup else ""
    times: dict[str, list[dt.datetime]] = collections.defaultdict(list)
    for n, e in events.items():
        if out[n] == "":
            times[e["actor"]].append(e["ts"])
    rate = {actor for actor, t in times.items() if len(t) > 120 and _burst(sorted(t), 120)}
    for n, e in events.items():
        if out[n] == "":
            out[n] = "bot" if BOT.search(e["ua"]) or e["actor"] in rate else "accepted"
    return out


def _burst(times: list[dt.datetime], limit: int) -> bool:
    """More than `limit` events within some 60 s: event i and event i + limit less than 60 s apart."""
    return any(later - first < dt.timedelta(seconds=60) for first, later in zip(times, times[limit:]))


def engine_buckets(db: Path) -> dict[int, str]:
    """line -> bucket as the engine recorded it in a workspace (single-file input)."""
    from engine.workspace import Workspace

    con = Workspace.open(db.parent, read_only=True, create=False).con  # events is a view over the workspace's Parquet
    try:
        out = {int(line): reason for line, reason in con.execute("SELECT line, reason FROM quarantine").fetchall()}
        out.update({int(line): reason for line, reason in con.execute("SELECT line, reason FROM rejected_events").fetchall()})
        out.update({int(n): "accepted" for (n,) in con.execute(
            "SELECT input_order & ((1::BIGINT << 40) - 1) FROM events").fetchall()})
    finally:
        con.close()
    return out
