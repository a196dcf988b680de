"""engine.step_shares.StepRows on a real DuckDB file: steps placed by journey row, entry times (unknown times, times
before the start, whole days), the resolution rule per journey kind, and first visits / visit counts under the
collapse rule, each against hand-computed values."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pytest

from engine import step_shares

T0 = datetime(2026, 1, 1)
DAY = 86_400
# journey_id -> (jrow, censored, tracked, known_t, dest_o, [(state, seconds after T0 or None)])
JOURNEYS = {
    "a": (2, False, False, 50.0, "converted", [("x", 0), ("x", 10), ("y", DAY + 0.5), ("x", 5)]),
    "b": (0, True, True, None, None, [("x", 0), (None, 20), ("y", None), ("y", 2.5 * DAY)]),
    "c": (1, True, True, 2.6 * DAY, "dropped", [("z", -7), ("z", 2.5 * DAY)]),
    "d": (3, True, False, None, None, [("x", 0)]),
}
DATA_END = T0 + timedelta(days=3)


@pytest.fixture
def con(tmp_path) -> duckdb.DuckDBPyConnection:
    db = duckdb.connect(str(tmp_path / "ws.duckdb"))
    db.execute("CREATE TABLE journeys (journey VARCHAR, journey_id VARCHAR)")
    db.execute("CREATE TABLE journey_steps (journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP)")
    db.execute("""CREATE TABLE est (jrow BIGINT, jix BIGINT, start_ts TIMESTAMP, data_end TIMESTAMP, censored BOOLEAN,
                  tracked BOOLEAN, known_t DOUBLE, dest_o VARCHAR)""")
    for jix, (jid, (jrow, censored, tracked, known_t, dest, steps)) in enumerate(JOURNEYS.items()):
        db.execute("INSERT INTO journeys VALUES ('main', ?)", [jid])
        db.execute("INSERT INTO est VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [jrow, jix, T0, DATA_END, censored, tracked, known_t, dest])
        for k, (state, at) in enumerate(steps):
            db.execute("INSERT INTO journey_steps VALUES ('main', ?, ?, ?, ?)",
                       [jid, k, state, None if at is None else T0 + timedelta(seconds=at)])
    return db


def _rows(con, collapse: bool, horizon: int) -> step_shares.StepRows:
    return step_shares.StepRows(con, "est", {"journey": "main", "collapse": collapse, "horizon": horizon})


def test_steps_by_row_with_entry_times_and_the_resolution_rule(con) -> None:
    rows = _rows(con, False, DAY)
    names = rows.state_names
    got = [(int(r), names[s], float(t), bool(k)) for r, s, t, k in zip(rows.row, rows.state, rows.s, rows.keep)]
    assert got == [
        # b: open and tracked, end unknown: steps entered a horizon before the data end (day 2.5 is not); NULL state
        # skipped; unknown time -> 0 s and never resolved by the horizon
        (0, "x", 0.0, True), (0, "y", 0.0, False), (0, "y", 2.5 * DAY, False),
        (1, "z", 0.0, True), (1, "z", 2.5 * DAY, True),  # c: open, end known: every step; before the start -> 0 s
        (2, "x", 0.0, True), (2, "x", 10.0, True), (2, "y", DAY + 0.5, True), (2, "x", 5.0, True),  # a: complete
        (3, "x", 0.0, False)]  # d: open without a progress row: none
    assert not _rows(con, False, -1).keep[:3].any()  # no horizon: an open journey's steps wait for its end


@pytest.mark.parametrize("collapse", [False, True])
def test_first_visits_and_visit_counts_share_one_order(con, collapse) -> None:
    rows = _rows(con, collapse, DAY)
    row, state, first, visits = rows.visits()
    names = rows.state_names
    got = {(int(r), names[s]): (float(t), int(v)) for r, s, t, v in zip(row, state, first, visits)}
    assert list(zip(row.tolist(), state.tolist())) == sorted(zip(row.tolist(), state.tolist()))
    # a: x, x, y, x -> x's first visit is its earliest step (5 s, after a later step), visits 3 (collapsed: 2)
    assert got == {(0, "x"): (0.0, 1), (0, "y"): (0.0, 2 if not collapse else 1), (1, "z"): (0.0, 2 if not collapse else 1),
                   (2, "x"): (0.0, 3 if not collapse else 2), (2, "y"): (DAY + 0.5, 1), (3, "x"): (0.0, 1)}
    assert rows.first_visits()[0] is row


def test_runs_out_of_row_order_or_split_are_placed_by_row() -> None:
    jix = np.array([5, 5, 2, 7, 7, 7, 2])  # journey 2 in two runs: both placed at its row, in their order
    state = np.array([0, 1, 0, -1, 2, 0, 3])
    row_of = np.array([-1, -1, 1, -1, -1, 0, -1, 2])
    row, at, of = step_shares._by_row(jix, state, row_of, 3)
    assert row.tolist() == [0, 0, 1, 1, 2, 2] and at.tolist() == [0, 1, 2, 6, 4, 5] and of.tolist() == state[at].tolist()
    row, at, of = step_shares._by_row(jix[:6], state[:6], row_of, 3)
    assert row.tolist() == [0, 0, 1, 2, 2] and at.tolist() == [0, 1, 2, 4, 5] and of.tolist() == state[at].tolist()
    row, at, of = step_shares._by_row(jix[:3], state[:3], row_of, 3)  # no NULL state
    assert row.tolist() == [0, 0, 1] and at.tolist() == [0, 1, 2] and of.tolist() == [0, 1, 0]
