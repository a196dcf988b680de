"""No-config inference, the epoch-unit and date-format guesses, and the config a no-config run saves."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pytest

from engine import infer, timestamps
from engine.config import from_dict, load_config, to_raw
from tests.engine.conftest import FIXTURES


@pytest.mark.parametrize(("name", "tier"), [
    ("passed", 1), ("Order Completed", 1), ("orders", 1), ("purchase", 1), ("subscription_started", 1),
    ("checkoutCompleted", 1), ("profile_completed", 2), ("payment_failed", None), ("order_cancelled", None),
    ("onboarding_privacy_policyAccepted", None), ("page_viewed", None), ("sign_up", None),
])
def test_names_that_say_success(name, tier) -> None:
    assert infer.success_tier(name) == tier


def test_failure_words_and_tokens() -> None:
    assert infer.tokens("onboarding_login_Type1_cancel") == ("onboarding", "login", "type1", "cancel")
    assert [infer.is_failure(n) for n in ("lost", "A_DECLINED", "Payment Failed", "listed")] == [True, True, True, False]


def _events(con: duckdb.DuckDBPyConnection, journeys: list[list[tuple[str, int]]]) -> None:
    con.execute("CREATE TABLE events (tenant_id VARCHAR, actor_id VARCHAR, event_name VARCHAR, ts TIMESTAMP, seq BIGINT)")
    for a, journey in enumerate(journeys):
        for seq, (name, minute) in enumerate(journey):
            con.execute("INSERT INTO events VALUES ('', ?, ?, TIMESTAMP '2024-01-01' + to_minutes(?), ?)",
                        [f"a{a}", name, minute, seq])


def test_behaviour_picks_a_terminal_minority_event_when_no_name_says_success() -> None:
    con = duckdb.connect()
    journeys = [[("open", 0), ("step", 1), ("thing_x", 2)] for _ in range(3)] + [[("open", 0), ("step", 1)] for _ in range(7)]
    _events(con, journeys + [[("open", 600), ("step", 601)]])
    cfg = infer.infer_journey(con, from_dict({}))
    journey = cfg.journeys[0]
    assert journey.start == "open" and journey.conversion == "thing_x"
    assert any("from behaviour only" in note for note in cfg.inferred)


def test_a_failure_is_used_when_no_one_converts_after_it_even_if_journeys_go_on() -> None:
    con = duckdb.connect()
    won = [[("open", 0), ("approved", 5), ("paperwork", 6)] for _ in range(4)]
    lost = [[("open", 0), ("declined", 5), ("paperwork", 6)] for _ in range(4)]
    _events(con, won + lost)
    journey = infer.infer_journey(con, from_dict({})).journeys[0]
    assert [(o.name, o.when) for o in journey.outcomes if o.when] == [
        ("approved", "event_name = 'approved'"), ("declined", "event_name = 'declined'")]


def test_window_and_inactivity_come_from_the_gaps_and_never_exceed_half_the_span() -> None:
    con = duckdb.connect()
    _events(con, [[("open", 1440 * d), ("step", 1440 * d + 3), ("step", 1440 * d + 6)] for d in range(10)])
    journey = infer.infer_journey(con, from_dict({})).journeys[0]
    inactive = next(o.inactive_for_s for o in journey.outcomes if o.inactive_for_s)
    assert inactive == 1800  # twice the 99th percentile gap (3 min) is below the 30 min floor
    assert journey.window_s == 3600  # twice the inactivity (1.5 x the 6 min spans is less)
    con = duckdb.connect()
    _events(con, [[("open", 1440 * d), ("step", 1440 * d + 600), ("step", 1440 * d + 1200)] for d in range(0, 60, 20)])
    journey = infer.infer_journey(con, from_dict({})).journeys[0]
    inactive = next(o.inactive_for_s for o in journey.outcomes if o.inactive_for_s)
    assert inactive == 86400  # twice 10 h, rounded up to a day
    assert journey.window_s == 2 * 86400  # 1.5 x 20 h is less than twice the inactivity


def test_outcome_names_fall_back_when_the_event_name_cannot_be_one() -> None:
    assert infer.outcome_name("passed", "converted", ("dropped",)) == "passed"
    assert infer.outcome_name("$purchase", "converted", ("dropped",)) == "converted"
    assert infer.outcome_name("dropped", "converted", ("dropped",)) == "converted"


@pytest.mark.parametrize(("values", "unit"), [
    ([1601412131, "1601412191"], "s"), ([1659304800025], "ms"), (["1538405774195002"], "us"),
    ([1714550400000000000], "ns"), (["2024-01-01T00:00:00Z"], None), ([], None),
])
def test_epoch_unit_from_magnitudes(values, unit) -> None:
    assert timestamps.unit_of(values) == unit


@pytest.mark.parametrize(("values", "fmt"), [
    (["13/02/2024 10:00:00", "01/03/2024 09:00:00"], "%d/%m/%Y %H:%M:%S"),
    (["02/13/2024 10:00"], "%m/%d/%Y %H:%M"), (["01.02.2024"], "%d.%m.%Y"), (["2024-02-01 10:00:00"], None),
])
def test_slash_date_formats(values, fmt) -> None:
    assert timestamps.format_of(values) == fmt


def test_out_of_range_times() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert timestamps.out_of_range(datetime(1970, 1, 20), datetime(1970, 1, 21), now)
    assert timestamps.out_of_range(datetime(2028, 1, 1), datetime(2028, 2, 1), now)
    assert not timestamps.out_of_range(datetime(1999, 12, 1), datetime(2024, 1, 1), now)
    assert not timestamps.out_of_range(datetime(2027, 12, 31), datetime(2028, 1, 2), now)


@pytest.mark.parametrize("name", ["demo.yaml", "bpi2012.yaml", "null.yaml"])
def test_to_raw_round_trips_through_the_schema(name) -> None:
    cfg = load_config(FIXTURES / name)
    again = from_dict(to_raw(cfg), base_dir=cfg.base_dir)
    assert again == cfg and again.config_hash == cfg.config_hash
