"""The hostile-input corpus of issue 18: every file runs to the end and every row is accounted for.

Each case is generated into the test's temporary folder (nothing large is committed): the small clean
base stream plus one kind of hostility. For each, the whole pipeline runs, the summary's identity
events_read = accepted + quarantined + duplicates + bots_filtered + late_rejected holds, and an
independent recount in plain Python (tests/engine/hostile.py `recount`, written from the documented
rules, not from engine code) agrees with the engine's bucket for every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from engine import pipeline
from tests.engine.hostile import (
    START,
    base_events,
    config_file,
    dumps,
    engine_buckets,
    recount,
    write_lines,
)

Lines = list[str | bytes]


def _event(i: int, **fields: object) -> dict[str, object]:
    return {"event_id": f"h{i}", "user_id": f"hu{i}", "event_name": "signup", "timestamp": "2026-01-06T10:00:00Z", **fields}


def timestamps() -> Lines:
    stamps = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "10000-01-01T00:00:00Z", "-000001-01-01T00:00:00Z",
              "+275760-09-13T00:00:00Z", "0044-03-15T00:00:00 BC", "yesterday", "2026-02-30T00:00:00Z", "", None,
              "nan", "1e400", " 12 ", 1767700000000, "1767700000000", "2026-01-06T10:00:00+05:30", "2026-01-06 10:00:00"]
    return dumps(base_events()) + [json.dumps(_event(i, timestamp=s)) for i, s in enumerate(stamps)]


def encoding() -> Lines:
    lines = dumps(base_events())
    bad_in_string = b'{"event_id":"x1","user_id":"u\xff","event_name":"a","timestamp":"2026-01-06T10:00:00Z"}'
    return [b"\xef\xbb\xbf" + lines[0].encode()] + lines[1:50] + [bad_in_string, b"\xc3\x28", b"\xed\xa0\x80"] + lines[50:]


def nul_bytes() -> Lines:
    return dumps(base_events()) + [
        b'{"event_id":"n1","user_id":"nu","event_name":"sig\x00nup","timestamp":"2026-01-06T10:00:00Z"}',
        json.dumps(_event(2, event_name="sig\u0000nup")), b"\x00" * 40, json.dumps(_event(3, user_id="\u0000"))]


def crlf() -> Lines:
    return [line + "\r" if i % 3 else line for i, line in enumerate(dumps(base_events()))] + ["\r", "  \r"]


def nested() -> Lines:
    deep_object = json.dumps(_event(1))[:-1] + ', "properties": ' + '{"a":' * 5000 + "1" + "}" * 5000 + "}"
    return dumps(base_events()) + [deep_object, "[" * 100_000 + "]" * 100_000, json.dumps(_event(2, properties=[[[1]]]))]


def odd_values() -> Lines:
    names = [12345, 1.5e300, True, ["a"], {"a": 1}, None, ""]
    return dumps(base_events()) + [json.dumps(_event(i, event_name=n)) for i, n in enumerate(names)]


def duplicates_and_bots() -> Lines:
    events = base_events()
    dupes = [dict(e, platform="changed") for e in events[:30]]  # same ids, different content: duplicates
    late_repeat = [dict(events[0], timestamp="2026-01-08T00:00:00Z")]  # beyond the 24 h window: a new event
    ua_bot = [_event(100 + i, user_agent="Mozilla/5.0 (compatible; Googlebot/2.1)", user_id="crawler") for i in range(5)]
    burst = [_event(200 + i, user_id="fast", timestamp=(START.replace(hour=3)).strftime("%Y-%m-%dT%H:%M:") + f"{i % 60:02d}.{i:03d}Z")
             for i in range(130)]
    no_id = [{k: v for k, v in _event(300).items() if k != "event_id"}] * 2  # identical content: one event, one duplicate
    return dumps(events + dupes + late_repeat + ua_bot + burst + no_id)


def homoglyphs() -> Lines:
    names = ["import", "im\u200bport", "\u0456mport", "imp\u043ert", "import\u202e", "\ufeffimport", "ｉｍｐｏｒｔ"]
    return dumps(base_events()) + [json.dumps(_event(i, event_name=n)) for i, n in enumerate(names)]


def many_names() -> Lines:
    return dumps(base_events()) + [json.dumps(_event(i, user_id=f"n{i // 2}", event_name=f"screen_{i}",
                                                     timestamp=f"2026-01-07T{(i // 600) % 24:02d}:{(i // 10) % 60:02d}:{i % 10:02d}Z"))
                                   for i in range(10_000)]


def quoted_csv(path: Path) -> Path:
    rows = ["event_id,user_id,event_name,timestamp,platform"]
    for e in base_events():
        rows.append(",".join(str(e[k]) for k in ("event_id", "user_id", "event_name", "timestamp", "platform")))
    rows += ['q1,uq,"multi\nline, ""quoted"" name",2026-01-06T10:00:00Z,web',
             'q2,uq,"a,b",2026-01-06T10:01:00Z,"we\nb"', "q3,,signup,2026-01-06T10:02:00Z,web", "q4,uq,,2026-01-06T10:03:00Z,web",
             'q5,uq,signup,not a time,web']
    path.write_text("\n".join(rows) + "\n")
    return path


CASES: dict[str, Callable[[], Lines]] = {
    "timestamps": timestamps, "invalid_utf8_and_bom": encoding, "nul_bytes": nul_bytes, "crlf": crlf,
    "deeply_nested": nested, "odd_values": odd_values, "duplicates_and_bots": duplicates_and_bots,
    "homoglyphs": homoglyphs, "ten_thousand_names": many_names,
}


def _check(tmp_path: Path, src: Path) -> dict:
    summary = pipeline.run(str(src), workspace=str(tmp_path / "ws"), config_path=str(config_file(tmp_path / "c.yaml")),
                           quiet=True)
    assert summary["events_read"] == (summary["accepted"] + summary["quarantined"]["total"] + summary["duplicates"]
                                      + summary["bots_filtered"] + summary["late_rejected"])
    truth, engine = recount(src), engine_buckets(tmp_path / "ws" / "journeygraph.duckdb")
    mismatches = {n: (truth.get(n), engine.get(n)) for n in truth.keys() | engine.keys() if truth.get(n) != engine.get(n)}
    assert not mismatches, dict(list(mismatches.items())[:10])
    assert len(truth) == summary["events_read"]
    return summary


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_jsonl_runs_and_every_row_is_accounted_for(tmp_path: Path, case: str) -> None:
    summary = _check(tmp_path, write_lines(tmp_path / "e.jsonl", CASES[case]()))
    assert summary["accepted"] >= len(base_events())  # the clean rows always get through


def test_csv_with_quoted_newlines_is_accounted_for(tmp_path: Path) -> None:
    summary = _check(tmp_path, quoted_csv(tmp_path / "e.csv"))
    assert summary["quarantined"]["by_reason"] == {"missing_actor": 1, "missing_event_name": 1, "bad_timestamp": 1}


@pytest.mark.slow
def test_a_fifty_megabyte_line(tmp_path: Path) -> None:
    big = json.dumps(_event(1, properties={"blob": "x" * (50 << 20)}))
    summary = _check(tmp_path, write_lines(tmp_path / "e.jsonl", dumps(base_events()) + [big, "{" + "y" * (50 << 20)]))
    assert summary["quarantined"]["by_reason"] == {"not_json": 1}


@pytest.mark.slow
def test_one_actor_with_a_million_events(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    with path.open("w") as handle:
        handle.write("\n".join(json.dumps(e) for e in base_events()) + "\n")
        for i in range(1_000_000):
            handle.write(f'{{"event_id":"m{i}","user_id":"heavy","event_name":"tick","timestamp":"2026-01-06T{(i // 36000) % 24:02d}:'
                         f'{(i // 600) % 60:02d}:{(i // 10) % 60:02d}.{i % 10}00Z"}}\n')
    summary = _check(tmp_path, path)
    assert summary["bots_filtered"] == 1_000_000  # 10 events a second is a scripted client
