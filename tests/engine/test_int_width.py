"""Narrow integer inputs of the estimates (engine.int_width): int32 where the values fit, int64 past that, the
same estimates either way, and keys that combine values built without wrapping."""

from __future__ import annotations

import copy
import dataclasses
import json

import duckdb
import numpy as np
import pytest

from engine import int_width, snapshot_estimates, step_shares
from engine.snapshot import build_snapshots
from fixtures import paper_chain as pc

BIG = 2 ** 31  # one past int32


def test_index_type_is_int32_up_to_its_maximum_and_int64_past_it():
    assert int_width.index_type(BIG - 1) is np.int32
    assert int_width.index_type(BIG) is np.int64


def test_a_value_past_int32_stays_int64_and_whole():
    values = np.array([0, 5, BIG], dtype=np.int64)
    out = int_width.narrowed(values, BIG)
    assert out.dtype == np.int64 and out.tolist() == [0, 5, BIG]
    assert int_width.narrowed(values[:2], 5).dtype == np.int32


@pytest.mark.parametrize("v", [[3, 7], np.array([3, 7], dtype=np.int64), np.array([-BIG - 1, BIG]), []])
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_finds_what_numpy_finds(v, side):
    a = np.array([1, 3, 3, 7, 9], dtype=np.int32)
    expected = np.searchsorted(a.astype(np.int64), np.asarray(v, dtype=np.int64), side=side)
    assert int_width.searchsorted(a, v, side=side).tolist() == expected.tolist()


def test_visit_keys_do_not_wrap_for_rows_near_int32():
    """StepRows.visits packs (row, state) as row * states + state: in int32 a row of 2^31 / 3 with 5 states would
    wrap; the key is built in int64 and the rows come back whole."""
    rows = object.__new__(step_shares.StepRows)
    rows.row = np.array([BIG // 3, BIG // 3, BIG // 3 + 1], dtype=np.int32)
    rows.state = np.array([4, 1, 0], dtype=np.int32)
    rows.s = np.array([2.0, 1.0, 0.5])
    rows.state_names = list("abcde")
    rows.collapse, rows.n_rows, rows._visits = False, BIG // 3 + 2, None
    row, state, first, visits = rows.visits()
    assert row.tolist() == [BIG // 3, BIG // 3, BIG // 3 + 1] and state.tolist() == [1, 4, 0]
    assert first.tolist() == [1.0, 2.0, 0.5] and visits.tolist() == [1, 1, 1]


@pytest.fixture(scope="module")
def captured():
    """The estimates' inputs of a simulated build with open journeys, and the arguments by_scope got."""
    con = duckdb.connect()
    data_end = pc.load_simulation(con, 1500, 5, late_journeys=300)
    cfg = pc.config()
    seen = []
    real = snapshot_estimates.by_scope

    def keep(inputs, *args):
        seen.append((inputs, args))
        return real(inputs, *args)

    snapshot_estimates.by_scope = keep
    try:
        build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
    finally:
        snapshot_estimates.by_scope = real
    con.close()
    assert len(seen) == 1
    return seen[0]


def test_row_numbers_state_codes_and_counts_are_int32(captured):
    inputs, _ = captured
    rows, steps, visits = inputs.rows, inputs.steps, inputs.visits
    narrow = {"steps.row": steps.row, "steps.src": steps.src, "steps.dst": steps.dst, "rows.cls": rows.cls,
              "rows.v_row": rows.v_row, "rows.v_state": rows.v_state, "visits.visits": visits.visits,
              "paths.states": rows.path_names.codes.states, "paths.code": rows.path_names.codes.code,
              "paths.length": rows.path_names.codes.length, "rows.seq_key": rows.seq_key}
    assert {k: str(v.dtype) for k, v in narrow.items()} == {k: "int32" for k in narrow}
    assert rows.path_key.dtype == np.int64  # (path, outcome) packed in one number: a product, kept wide
    assert rows.v_t.dtype == steps.s.dtype == steps.known_t.dtype == np.float64


def _widened(inputs):
    """A copy of `inputs` with every int32 array the estimates read as int64 (the old layout)."""
    wide = copy.copy(inputs)
    steps, rows = copy.copy(inputs.steps), copy.copy(inputs.rows)  # a new rows: its own reach_visits.ByState
    for name in ("row", "src", "dst"):
        setattr(steps, name, getattr(steps, name).astype(np.int64))
    for name in ("cls", "v_row", "v_state", "seq_key"):
        setattr(rows, name, getattr(rows, name).astype(np.int64))
    names = copy.copy(rows.path_names)
    names.codes = dataclasses.replace(names.codes, **{k: getattr(names.codes, k).astype(np.int64)
                                                      for k in ("states", "code", "length")})
    rows.path_names = names
    wide.visits = dataclasses.replace(inputs.visits, row=rows.v_row, state=rows.v_state,
                                      visits=inputs.visits.visits.astype(np.int64))
    wide.steps, wide.rows = steps, rows
    return wide


def test_estimates_are_the_same_from_int32_and_int64_inputs(captured):
    inputs, args = captured
    narrow = snapshot_estimates.by_scope(inputs, *args)
    wide = snapshot_estimates.by_scope(_widened(inputs), *args)
    assert any(b.get("resolved_shares") for b in narrow.values())
    assert json.dumps(narrow, sort_keys=True, default=str) == json.dumps(wide, sort_keys=True, default=str)


def test_grid_places_are_int32():
    """incidence.compact_parts numbers the grid's places in int32 (held per visit by reach_visits.ByState)."""
    from engine import incidence

    present, (place,) = incidence.compact_parts([np.array([5, 2, 5, 9])], 10)
    assert present.tolist() == [2, 5, 9] and place.dtype == np.int32 and place.tolist() == [1, 0, 1, 2]
