"""engine.step_counts and engine.step_arrays: per-class transitions, reach, paths and open journeys' resolved steps
from unordered steps in a real DuckDB file."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from engine import step_arrays, step_counts
from engine.paths import SEP

# journey -> (class, outcome or None when censored, steps as (step, state) in storage order: deliberately unsorted)
JOURNEYS = {
    "j1": (1, "converted", [(2, "b"), (0, "a"), (1, "b"), (3, "c")]),
    "j2": (1, "dropped", [(1, None), (0, "a"), (2, "c")]),
    "j3": (2, "converted", [(0, "a"), (1, "b")]),
    "j4": (2, None, [(0, "a"), (1, "a")]),           # censored: never counted
    "j5": (2, "dropped", []),                        # completed without a step: no path, no counts
}


@pytest.fixture
def con(tmp_path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "ws.duckdb"))
    con.execute("""CREATE TABLE journeys (journey VARCHAR, tenant_id VARCHAR, journey_id VARCHAR, actor_id VARCHAR,
                   start_ts TIMESTAMP, end_ts TIMESTAMP, outcome VARCHAR, censored BOOLEAN, n_steps INTEGER,
                   segments MAP(VARCHAR, VARCHAR))""")
    con.execute("CREATE TABLE journey_steps (journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP, event_id VARCHAR)")
    for jid, (_cls, outcome, steps) in JOURNEYS.items():
        con.execute("INSERT INTO journeys VALUES ('main', '', ?, ?, TIMESTAMP '2026-01-01', TIMESTAMP '2026-01-02', ?, ?, ?, MAP())",
                    [jid, "actor-" + jid, outcome, outcome is None, len(steps)])
        for step, state in steps:
            con.execute("INSERT INTO journey_steps VALUES ('main', ?, ?, ?, TIMESTAMP '2026-01-01', ?)", [jid, step, state, f"{jid}-{step}"])
    classes = ", ".join(f"('{jid}', {cls})" for jid, (cls, _, _) in JOURNEYS.items())
    # engine.snapshot's per-journey table (step_counts._JOURNEYS_SQL): j4 is open, its outcome not known yet
    con.execute(f"""CREATE TABLE classes AS
                    SELECT j.rowid AS jix, c.cls, j.censored, coalesce(j.outcome, 'dropped') AS outcome, j.journey_id,
                           NULL::VARCHAR AS known_outcome, j.censored AS tracked, j.end_ts,
                           TIMESTAMP '2026-01-03' AS data_end
                    FROM journeys j JOIN (VALUES {classes}) c(journey_id, cls) USING (journey_id)""")
    return con


def _count(con, collapse: bool) -> step_counts.StepCounts:
    steps = step_arrays.fetch(con, "main")
    return step_counts.count_steps(steps, step_counts.journeys(con, "classes", steps.size), collapse)


def _rows(table, *columns) -> set[tuple]:
    data = table.to_pydict()
    return set(zip(*(data[c] for c in columns)))


def test_transitions_start_at_caret_and_end_in_the_outcome(con) -> None:
    counts = _count(con, collapse=False)
    got = {(c, p, s, n): k for c, p, s, n, k in _rows(counts.transitions, "cls", "prev", "state", "next", "c")}
    assert got == {
        (1, "^", "a", "b"): 1, (1, "a", "b", "b"): 1, (1, "b", "b", "c"): 1, (1, "b", "c", "converted"): 1,  # j1
        (1, "^", "a", "c"): 1, (1, "a", "c", "dropped"): 1,                                                  # j2, NULL skipped
        (2, "^", "a", "b"): 1, (2, "a", "b", "converted"): 1,                                                # j3
    }


def test_collapse_drops_repeats_and_renumbers(con) -> None:
    counts = _count(con, collapse=True)
    ids = step_arrays.fetch(con, "main").journey_ids.take(counts.paths.column("jix")).to_pylist()
    texts = counts.path_names.take(counts.paths.column("path_id")).to_pylist()
    paths = {j: (n, p.split(SEP)) for j, n, p in zip(ids, counts.paths.column("length").to_pylist(), texts)}
    assert paths == {"j1": (3, ["a", "b", "c"]), "j2": (2, ["a", "c"]), "j3": (2, ["a", "b"])}
    assert ("a", "b", "c") in {(p, s, n) for p, s, n in _rows(counts.transitions, "prev", "state", "next")}


def test_paths_are_spelled_once_per_distinct_path(con) -> None:
    con.execute("UPDATE classes SET censored = false, outcome = 'converted' WHERE journey_id = 'j4'")  # j4: a, a
    con.execute("INSERT INTO journey_steps VALUES ('main', 'j5', 0, 'a', TIMESTAMP '2026-01-01', 'j5-0')")  # j5: a
    counts = _count(con, collapse=True)  # j4 collapses to j5's path
    texts = counts.path_names.take(counts.paths.column("path_id")).to_pylist()
    assert sorted(texts) == sorted(["a" + SEP + "b" + SEP + "c", "a" + SEP + "c", "a" + SEP + "b", "a", "a"])
    assert sorted(counts.path_names.to_pylist()) == sorted(set(texts))  # no journey's own copy


def test_reach_counts_journeys_visits_and_repeats(con) -> None:
    counts = _count(con, collapse=False)
    got = {(c, s, o): (r, v, rep) for c, s, o, r, v, rep in
           _rows(counts.reach, "cls", "state", "outcome", "reached", "visits", "repeats")}
    assert got[(1, "b", "converted")] == (1, 2, 1)     # j1 visits b twice
    assert got[(1, "a", "converted")] == (1, 1, 0)
    assert got[(1, "c", "dropped")] == (1, 1, 0)
    assert got[(2, "a", "converted")] == (1, 1, 0)
    assert sum(r for r, _, _ in got.values()) == 3 + 2 + 2  # j1, j2, j3 states; j4 (censored) and j5 (no steps) add nothing


@pytest.mark.parametrize("sizes", [[4, 5, 3], [2 ** 12, 2 ** 12, 3], [2 ** 40, 2 ** 30, 3]],
                         ids=["dense-count", "sorted-key", "lexsort-fallback"])
def test_group_gives_the_same_groups_either_way(sizes) -> None:
    rng = np.random.default_rng(7)
    columns = [rng.integers(0, min(s, 4), 500) for s in sizes]
    distinct, counts, inverse = step_counts.group(columns, sizes)
    expected = {}
    for row in zip(*columns):
        expected[row] = expected.get(row, 0) + 1
    assert dict(zip(zip(*distinct), counts.tolist())) == expected
    assert [tuple(c[i] for c in distinct) for i in inverse] == list(zip(*columns))


def test_dense_and_sorted_grouping_agree_exactly() -> None:
    """The counting pass returns what np.unique would: same distinct rows in the same order, counts and groups."""
    rng = np.random.default_rng(11)
    sizes = [7, 33, 30, 33, 2]
    columns = [rng.integers(0, s, 20_000) for s in sizes]
    key = np.zeros(20_000, dtype=np.int64)
    for column, size in zip(columns, sizes):
        key = key * size + column
    dense = step_counts._group_dense(key, int(np.prod(sizes)), sizes)
    _, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    for got, want in zip(dense[0], [c[first] for c in columns]):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(dense[1], counts)
    np.testing.assert_array_equal(dense[2], inverse.reshape(-1))


@pytest.mark.parametrize("gaps", [False, True], ids=["steps-0-to-k", "gapped-steps"])
def test_step_order_matches_a_lexsort(gaps) -> None:
    """By position when every journey's steps are 0..k-1, by lexsort otherwise: the same order either way."""
    rng = np.random.default_rng(3)
    lengths = rng.integers(1, 9, 400)
    jix = np.repeat(np.arange(400), lengths)
    step = np.concatenate([np.arange(n) for n in lengths]) * (2 if gaps else 1)
    shuffle = rng.permutation(len(jix))
    jix, step = jix[shuffle], step[shuffle]
    np.testing.assert_array_equal(step_arrays.step_order(jix, step), np.lexsort((step, jix)))


def test_step_order_falls_back_when_a_step_repeats() -> None:
    jix = np.array([0, 0, 1, 1])
    step = np.array([1, 1, 1, 0])   # journey 0 numbers two steps 1: not a permutation of slots
    order = step_arrays.step_order(jix, step)
    np.testing.assert_array_equal(order, np.lexsort((step, jix)))
