"""Files as the tools people use export them, read with no config.

Each sample is written from the vendor's public documentation, not from this
project's shape: Segment Spec common fields and track/page/identify calls
(twilio.com/docs/segment/connections/spec/common), RudderStack (the same spec
plus `rudderId`/`channel`), PostHog events (posthog.com/docs/data/events:
`event`, `distinct_id`, ISO `timestamp`, `properties`; batch exports add
`uuid`), Amplitude Export API rows (amplitude.com/docs/apis/analytics/export:
`event_type`, `event_time` as "YYYY-MM-DD HH:MM:SS.ffffff" UTC, `insert_id`,
`user_id`/`device_id`, `event_properties`, `user_properties`), Mixpanel raw
export (developer.mixpanel.com/reference/export: `event` and `properties`
with `time` in epoch seconds, `distinct_id`, `$insert_id`; the /import API
takes `time` in milliseconds), the GA4/Firebase BigQuery export
(developers.google.com/analytics/bigquery/event-schema: `event_timestamp` in
microseconds, `user_pseudo_id`), and pm4py's XES column names. Every row is
read or quarantined with a reason, actors and years are right, the vendor's
dedup key is the event id, and the conversion is inferred where there is one.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine import infer, ingest, normalize
from engine.config import Config, from_dict
from tests.engine.conftest import rows


def _jsonl(path: Path, docs: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return str(path)


def _csv(path: Path, header: list[str], body: list[list[Any]]) -> str:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return str(path)


def read(path: str, cfg: Config | None = None) -> tuple[duckdb.DuckDBPyConnection, ingest.IngestStats, Config]:
    """Ingest, normalise and infer the journey of one file with no config, on an in-memory database."""
    cfg = cfg or from_dict({})
    con = duckdb.connect()
    stats = ingest.load(con, path, cfg, "r1")
    normalize.normalize(con, cfg, watermark=None)
    return con, stats, infer.infer_journey(con, cfg)


def conversion(cfg: Config) -> str | None:
    """The rule of the inferred conversion outcome (named after its event), None when none was inferred."""
    journey = cfg.journeys[0]
    return next((o.when for o in journey.outcomes if o.name == journey.conversion), None)


def failures(cfg: Config) -> list[str | None]:
    journey = cfg.journeys[0]
    return [o.when for o in journey.outcomes if o.when and o.name != journey.conversion]


SEGMENT = [
    {"type": "page", "name": "Pricing", "anonymousId": "anon-1", "messageId": "m1", "timestamp": "2024-05-01T10:00:00.000+02:00",
     "context": {"page": {"path": "/pricing"}}, "properties": {"path": "/pricing"}},
    {"type": "identify", "anonymousId": "anon-1", "userId": "u1", "messageId": "m2", "timestamp": "2024-05-01T08:01:00Z",
     "traits": {"plan": "pro"}},
    {"type": "track", "event": "Checkout Started", "userId": "u1", "messageId": "m3", "timestamp": "2024-05-01T08:02:00Z",
     "properties": {"revenue": 39.95}},
    {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m4", "timestamp": "2024-05-01T08:03:00Z",
     "receivedAt": "2024-05-01T08:03:01Z", "properties": {"order_id": "o1", "total": 39.95}},
    {"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "m4", "timestamp": "2024-05-01T08:03:00Z",
     "receivedAt": "2024-05-01T08:03:01Z", "properties": {"order_id": "o1", "total": 39.95}},  # a retry: same messageId
    {"type": "page", "name": "Pricing", "anonymousId": "anon-2", "messageId": "m5", "timestamp": "2024-05-01T09:00:00Z"},
    {"type": "track", "event": "Checkout Started", "anonymousId": "anon-2", "messageId": "m6", "timestamp": "2024-05-01T09:01:00Z"},
    {"type": "track", "event": "Signed Up", "messageId": "m7", "timestamp": "2024-05-01T09:02:00Z"},  # no user at all
]


@pytest.mark.parametrize("extra", [{}, {"rudderId": "r-1", "channel": "web"}], ids=["segment", "rudderstack"])
def test_segment_spec_events(tmp_path, extra) -> None:
    con, stats, cfg = read(_jsonl(tmp_path / "segment.jsonl", [{**d, **extra} for d in SEGMENT]))
    assert ("RudderStack" if extra else "Segment Spec") in stats.notes[0]
    assert stats.quarantined_by_reason == {"missing_actor": 1}
    accepted = rows(con, "SELECT event_id, event_name, year(ts) FROM events ORDER BY ts, event_id")
    assert accepted == [("m1", "Pricing", 2024), ("m2", "identify", 2024), ("m3", "Checkout Started", 2024),
                        ("m4", "Order Completed", 2024), ("m5", "Pricing", 2024), ("m6", "Checkout Started", 2024)]
    assert rows(con, "SELECT count(DISTINCT actor_id) FROM events") == [(2,)]  # the retry (same messageId) is a duplicate
    assert rows(con, "SELECT DISTINCT actor_id FROM events WHERE event_name = 'Pricing' ORDER BY 1") == [("anon-2",), ("u1",)]
    assert rows(con, "SELECT properties->>'context' IS NOT NULL FROM events WHERE event_id = 'm1'") == [(True,)]
    assert conversion(cfg) == "event_name = 'Order Completed'" and cfg.journeys[0].conversion == "Order Completed"


def test_snowplow_enriched_events_as_json(tmp_path) -> None:
    def ev(eid: str, name: str, at: str, duid: str, uid: str | None) -> dict[str, Any]:
        return {"app_id": "shop", "platform": "web", "collector_tstamp": at, "derived_tstamp": at, "event": "unstruct",
                "event_id": eid, "event_name": name, "domain_userid": duid, "domain_sessionid": "s-" + duid, "user_id": uid,
                "useragent": "Mozilla/5.0"}
    docs = [ev("e1", "page_view", "2023-03-01 10:00:00.000", "d1", None), ev("e2", "purchase", "2023-03-01 10:04:00.000", "d1", "u1"),
            ev("e3", "page_view", "2023-03-01 11:00:00.000", "d2", None)]
    con, stats, cfg = read(_jsonl(tmp_path / "snowplow.jsonl", docs))
    assert "Snowplow" in stats.notes[0]
    assert rows(con, "SELECT event_id, actor_id, year(ts), user_agent FROM events ORDER BY ts") == [
        ("e1", "d1", 2023, "Mozilla/5.0"), ("e2", "u1", 2023, "Mozilla/5.0"), ("e3", "d2", 2023, "Mozilla/5.0")]
    assert conversion(cfg) == "event_name = 'purchase'"


POSTHOG = [
    ["018f-0001", "$pageview", json.dumps({"$current_url": "https://x.io/", "$browser": "Firefox"}), "2024-05-22T17:09:29.220Z", "d1"],
    ["018f-0002", "signed up", json.dumps({"plan": "free"}), "2024-05-22T17:10:00.000Z", "d1"],
    ["018f-0003", "purchase", json.dumps({"amount": 12}), "2024-05-22T17:12:00.000Z", "d1"],
    ["018f-0004", "$pageview", json.dumps({"$browser": "Chrome"}), "2024-05-22T18:00:00.000Z", "d2"],
    ["018f-0005", "signed up", "{}", "not a time", "d2"],
]


def test_posthog_csv_with_properties_as_json_text(tmp_path) -> None:
    path = _csv(tmp_path / "posthog.csv", ["uuid", "event", "properties", "timestamp", "distinct_id"], POSTHOG)
    con, stats, cfg = read(path)
    assert "PostHog" in stats.notes[0] and stats.quarantined_by_reason == {"bad_timestamp": 1}
    assert rows(con, "SELECT event_id, actor_id, properties->>'$.\"$browser\"' FROM events ORDER BY ts") == [
        ("018f-0001", "d1", "Firefox"), ("018f-0002", "d1", None), ("018f-0003", "d1", None), ("018f-0004", "d2", "Chrome")]
    assert conversion(cfg) == "event_name = 'purchase'"


def test_posthog_jsonl(tmp_path) -> None:
    docs = [{"uuid": u, "event": e, "properties": json.loads(p), "timestamp": t, "distinct_id": d} for u, e, p, t, d in POSTHOG]
    con, stats, _ = read(_jsonl(tmp_path / "posthog.jsonl", docs))
    assert "PostHog" in stats.notes[0]
    assert rows(con, "SELECT count(*), count(DISTINCT actor_id), min(year(ts)) FROM events") == [(4, 2, 2024)]


def test_amplitude_export_rows(tmp_path) -> None:
    def row(i: int, user: str | None, device: str, event: str, at: str) -> dict[str, Any]:
        return {"event_id": i, "insert_id": f"ins-{i}", "uuid": f"uuid-{i}", "user_id": user, "device_id": device,
                "event_type": event, "event_time": at, "client_event_time": at, "session_id": 1723000000000,
                "event_properties": {"screen": event}, "user_properties": {"plan": "trial"}, "platform": "iOS"}
    docs = [row(1, None, "dev-1", "Onboarding Start", "2024-08-07 10:00:00.000000"),
            row(2, "user-77", "dev-1", "Purchase Completed", "2024-08-07 10:05:00.123000"),
            row(3, None, "dev-2", "Onboarding Start", "2024-08-07 11:00:00.000000"),
            row(3, None, "dev-2", "Onboarding Start", "2024-08-07 11:00:00.000000")]  # Amplitude's event_id is not unique
    docs[3]["insert_id"] = "ins-3"
    con, stats, cfg = read(_jsonl(tmp_path / "amplitude.json", docs))
    assert "Amplitude" in stats.notes[0] and stats.quarantined == 0
    assert rows(con, "SELECT event_id, actor_id, platform, properties->>'screen', properties->'user_properties'->>'plan' "
                     "FROM events ORDER BY ts") == [
        ("ins-1", "dev-1", "iOS", "Onboarding Start", "trial"), ("ins-2", "user-77", "iOS", "Purchase Completed", "trial"),
        ("ins-3", "dev-2", "iOS", "Onboarding Start", "trial")]
    assert rows(con, "SELECT ts FROM events WHERE event_id = 'ins-2'") == [(datetime(2024, 8, 7, 10, 5, 0, 123000),)]
    assert conversion(cfg) == "event_name = 'Purchase Completed'"


@pytest.mark.parametrize(("scale", "unit"), [(1, "seconds"), (1000, "milliseconds")], ids=["export_seconds", "import_ms"])
def test_mixpanel_raw_export(tmp_path, scale, unit) -> None:
    def ev(name: str, t: int, who: str, insert: str) -> dict[str, Any]:
        return {"event": name, "properties": {"time": t * scale, "distinct_id": who, "$insert_id": insert,
                                              "mp_lib": "web", "$browser": "Safari"}}
    docs = [ev("Signed up", 1601412131, "a@x.io", "i1"), ev("Played Song", 1601412191, "a@x.io", "i2"),
            ev("Subscription Purchased", 1601412251, "a@x.io", "i3"), ev("Signed up", 1601415000, "b@x.io", "i4"),
            ev("Signed up", 1601415000, "b@x.io", "i4")]  # a duplicate by $insert_id
    con, stats, cfg = read(_jsonl(tmp_path / "mixpanel.jsonl", docs))
    assert "Mixpanel" in stats.notes[0] and f"epoch {unit}" in stats.notes[0]
    assert rows(con, "SELECT count(*), count(DISTINCT actor_id), min(ts), max(event_id) FROM events") == [
        (4, 2, datetime(2020, 9, 29, 20, 42, 11), "i4")]
    assert rows(con, "SELECT properties->>'$.\"$browser\"' FROM events LIMIT 1") == [("Safari",)]
    assert conversion(cfg) == "event_name = 'Subscription Purchased'"


def test_ga4_bigquery_export_columns(tmp_path) -> None:
    body = [["20240301", 1709280000000001, "first_open", "p1", "", "ANDROID"],
            ["20240301", 1709280060000002, "add_to_cart", "p1", "", "ANDROID"],
            ["20240301", 1709280120000003, "purchase", "p1", "cust-9", "ANDROID"],
            ["20240301", 1709283600000004, "first_open", "p2", "", "IOS"]]
    path = _csv(tmp_path / "ga4.csv", ["event_date", "event_timestamp", "event_name", "user_pseudo_id", "user_id", "platform"], body)
    con, stats, cfg = read(path)
    assert "GA4" in stats.notes[0] and "epoch microseconds" in stats.notes[0]
    assert rows(con, "SELECT min(ts), count(DISTINCT platform) FROM events") == [(datetime(2024, 3, 1, 8, 0, 0, 1), 2)]
    assert conversion(cfg) == "event_name = 'purchase'"


def test_pm4py_csv_columns(tmp_path) -> None:
    body = [["c1", "A_SUBMITTED", "2011-10-01 00:38:44.546000+02:00", "COMPLETE", "112"],
            ["c1", "A_APPROVED", "2011-10-01 11:00:00.000000+02:00", "COMPLETE", "10629"],
            ["c2", "A_SUBMITTED", "2011-10-02 09:00:00.000000+02:00", "COMPLETE", "112"],
            ["c2", "A_DECLINED", "2011-10-02 09:00:01.000000+02:00", "COMPLETE", "112"]]
    path = _csv(tmp_path / "log.csv", ["case:concept:name", "concept:name", "time:timestamp", "lifecycle:transition", "org:resource"], body)
    con, stats, cfg = read(path)
    assert "pm4py" in stats.notes[0]
    assert rows(con, "SELECT actor_id, min(ts) FROM events GROUP BY 1 ORDER BY 1") == [
        ("c1", datetime(2011, 9, 30, 22, 38, 44, 546000)), ("c2", datetime(2011, 10, 2, 7, 0))]
    assert rows(con, "SELECT DISTINCT properties->>'lifecycle:transition' FROM events") == [("COMPLETE",)]
    assert conversion(cfg) == "event_name = 'A_APPROVED'"
    assert failures(cfg) == ["event_name = 'A_DECLINED'"]
    assert [o.name for o in cfg.journeys[0].outcomes] == ["A_APPROVED", "A_DECLINED", "dropped"]


@pytest.mark.parametrize(("times", "unit"), [
    (["1714550400", "1714550460", "1714550520", "1714554000"], "seconds"),
    (["1714550400000", "1714550460000", "1714550520000", "1714554000000"], "milliseconds"),
    (["1714550400000000000", "1714550460000000000", "1714550520000000000", "1714554000000000000"], "nanoseconds"),
    (["2024-05-01T08:00:00+00:00", "2024-05-01 08:01:00", "2024-05-01T10:02:00+02:00", "2024-05-01T09:00:00Z"], None),
], ids=["epoch_s", "epoch_ms", "epoch_ns", "iso_mixed"])
def test_plain_csv_with_sensible_names(tmp_path, times, unit) -> None:
    body = [["u1", "visit", times[0]], ["u1", "signup", times[1]], ["u1", "completed", times[2]], ["u2", "visit", times[3]]]
    con, stats, cfg = read(_csv(tmp_path / "plain.csv", ["uid", "action", "time"], body))
    assert "plain event table" in stats.notes[0] and "user_id<-uid" in stats.notes[0]
    if unit:
        assert f"epoch {unit}" in stats.notes[0]
    assert rows(con, "SELECT min(ts), max(ts), count(DISTINCT actor_id) FROM events") == [
        (datetime(2024, 5, 1, 8, 0), datetime(2024, 5, 1, 9, 0), 2)]
    assert conversion(cfg) == "event_name = 'completed'"


def test_a_flattened_mixpanel_csv_keeps_its_insert_id_as_the_dedup_key(tmp_path) -> None:
    body = [["Signed up", "a@x.io", "1601412131", "i1"], ["Signed up", "a@x.io", "1601412131", "i1"],
            ["Purchase", "a@x.io", "1601412191", "i2"]]
    con, stats, cfg = read(_csv(tmp_path / "mp.csv", ["event", "distinct_id", "time", "$insert_id"], body))
    assert "event_id<-$insert_id" in stats.notes[0] and "epoch seconds" in stats.notes[0]
    assert rows(con, "SELECT event_id, ts FROM events ORDER BY ts") == [
        ("i1", datetime(2020, 9, 29, 20, 42, 11)), ("i2", datetime(2020, 9, 29, 20, 43, 11))]
    assert conversion(cfg) == "event_name = 'Purchase'"


def test_day_first_dates_are_detected_and_the_format_option_wins(tmp_path) -> None:
    body = [["u1", "open", "13/02/2024 10:00:00"], ["u1", "buy", "13/02/2024 10:05:00"], ["u2", "open", "01/03/2024 09:00:00"]]
    path = _csv(tmp_path / "eu.csv", ["user", "event", "date"], body)
    con, stats, _ = read(path)
    assert "format %d/%m/%Y %H:%M:%S" in stats.notes[0]
    assert rows(con, "SELECT min(ts), max(ts) FROM events") == [(datetime(2024, 2, 13, 10), datetime(2024, 3, 1, 9))]
    ambiguous = _csv(tmp_path / "us.csv", ["user", "event", "date"], [["u1", "open", "02/03/2024 10:00:00"]])
    con, stats, _ = read(ambiguous, from_dict({"normalize": {"timestamp_format": "%m/%d/%Y %H:%M:%S"}}))
    assert rows(con, "SELECT ts FROM events") == [(datetime(2024, 2, 3, 10),)]


def test_a_forced_wrong_unit_lands_in_1970_with_a_warning_naming_column_and_unit(tmp_path) -> None:
    body = [["u1", "open", "1714550400"], ["u1", "buy", "1714550460"]]
    path = _csv(tmp_path / "s.csv", ["uid", "action", "ts"], body)
    con, stats, _ = read(path, from_dict({"normalize": {"timestamp_unit": "ms"}}))
    assert rows(con, "SELECT year(min(ts)) FROM events") == [(1970,)]
    warning = stats.notes[-1]
    assert warning.startswith("warning: every accepted time falls in 1970-01-20..1970-01-20")
    assert "times in ts: epoch milliseconds" in warning and "normalize.timestamp_unit" in warning


def test_sessions_with_nested_events_one_row_per_event(tmp_path) -> None:
    docs = [{"session": 7, "events": [{"aid": 1, "ts": 1659304800025, "type": "clicks"},
                                       {"aid": 2, "ts": 1659304900000, "type": "carts"},
                                       {"aid": 2, "ts": 1659305000000, "type": "orders"}]},
            {"session": 8, "events": [{"aid": 3, "ts": 1659309000000, "type": "clicks"}]}]
    path = _jsonl(tmp_path / "otto.jsonl", docs)
    with open(path, "a") as handle:
        handle.write("{broken\n")
    con, stats, cfg = read(path)
    assert "one line per session with a list `events`" in stats.notes[0]
    assert (stats.events_read, stats.quarantined_by_reason) == (5, {"not_json": 1})
    assert rows(con, "SELECT actor_id, event_name, properties->>'aid' FROM events ORDER BY ts") == [
        ("7", "clicks", "1"), ("7", "carts", "2"), ("7", "orders", "2"), ("8", "clicks", "3")]
    assert rows(con, "SELECT line FROM quarantine") == [(5,)]
    assert conversion(cfg) == "event_name = 'orders'"


def test_columns_it_cannot_place_are_named_with_the_fix(tmp_path) -> None:
    path = _csv(tmp_path / "odd.csv", ["who", "what", "when_it_was"], [["a", "b", "c"]])
    con = duckdb.connect()
    stats = ingest.load(con, path, from_dict({}), "r1")
    assert stats.quarantined_by_reason == {"missing_timestamp": 1}
    assert "columns not recognised (what, when_it_was, who)" in stats.notes[0] and "normalize.fields" in stats.notes[0]


def test_renames_may_be_paths_and_lists(tmp_path) -> None:
    docs = [{"who": {"id": "u1"}, "kind": None, "name": "open", "at": "2024-01-01T00:00:00Z"}]
    cfg = from_dict({"normalize": {"fields": {"user_id": "who.id", "event_name": ["kind", "name"], "timestamp": "at"}}})
    con, stats, _ = read(_jsonl(tmp_path / "r.jsonl", docs), cfg)
    assert "renamed by normalize.fields" in stats.notes[0]
    assert rows(con, "SELECT actor_id, event_name FROM events") == [("u1", "open")]


def test_a_source_of_many_files_is_sampled_on_one_database(tmp_path, monkeypatch):
    """A source split into a file per day is sampled file by file: each sample reads its own file, and no
    sample opens a database of its own (≈ 35 ms each, most of a small file's ingest)."""
    from engine import formats

    paths = []
    for day in (1, 2, 3):
        path = tmp_path / f"day_{day}.parquet"
        duckdb.sql(f"SELECT 'u{day}' AS user_id, 'open' AS event_name, TIMESTAMP '2026-01-0{day} 10:00:00' AS timestamp"
                   ).write_parquet(str(path))
        paths.append(str(path))
    formats._sampler()  # opened once, before counting
    opened = []
    monkeypatch.setattr(duckdb, "connect", lambda *a, **k: opened.append(a) or pytest.fail("opened a database"))
    samples = [formats.sample_rows(p, "parquet")[0] for p in paths]
    assert [s[0]["user_id"] for s in samples] == ["u1", "u2", "u3"]
    assert opened == []
