"""engine.step_arrays (one scan of the steps) and the counts read from it: open journeys' resolved steps,
outcome-adjacent visits and path ids, against a real DuckDB file."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import outcome_adjacent, paths, step_arrays, step_counts

T0 = datetime(2026, 1, 1)
# journey -> (class, censored, outcome (known outcome when censored), steps as (state, seconds after T0))
JOURNEYS = {
    "j1": (1, False, "converted", [("a", 0), ("b", 60), ("c", 100)]),      # c 2 s before the purchase at 102 s
    "j2": (1, False, "dropped", [("a", 0), (None, 5), ("a", 10)]),
    "j3": (2, True, "converted", [("a", 0), ("b", 3600)]),                  # open, end known
    "j4": (2, True, None, [("a", 0), ("b", 86_400 * 5)]),                  # open, b entered 5 days in
}
END = {"j1": 102, "j2": 10 + 86_400, "j3": 3700, "j4": 86_400 * 5}
DATA_END = T0 + timedelta(days=6)


def _db(tmp_path, order: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "ws.duckdb"))
    con.execute("""CREATE TABLE journeys (journey VARCHAR, tenant_id VARCHAR, journey_id VARCHAR, actor_id VARCHAR,
                   start_ts TIMESTAMP, end_ts TIMESTAMP, outcome VARCHAR, censored BOOLEAN, n_steps INTEGER,
                   segments MAP(VARCHAR, VARCHAR))""")
    con.execute("CREATE TABLE raw (journey VARCHAR, journey_id VARCHAR, step INTEGER, state VARCHAR, ts TIMESTAMP, event_id VARCHAR)")
    for jid, (_, censored, outcome, steps) in reversed(JOURNEYS.items()):  # rowid order differs from id order
        con.execute("INSERT INTO journeys VALUES ('main', '', ?, ?, ?, ?, ?, ?, ?, MAP())",
                    [jid, "u-" + jid, T0, T0 + timedelta(seconds=END[jid]), None if censored else outcome, censored, len(steps)])
        for step, (state, at) in enumerate(steps):
            con.execute("INSERT INTO raw VALUES ('main', ?, ?, ?, ?, ?)", [jid, step, state, T0 + timedelta(seconds=at), f"{jid}-{step}"])
    con.execute("INSERT INTO raw VALUES ('main', 'stray', 0, 'a', ?, 'x')", [T0])  # no such journey: dropped
    con.execute(f"CREATE TABLE journey_steps AS SELECT * FROM raw ORDER BY {order}")
    outcomes = ", ".join(f"('{jid}', {cls}, {'NULL' if o is None else repr(o)})" for jid, (cls, _, o, _) in JOURNEYS.items())
    con.execute(f"""CREATE TABLE per AS
                    SELECT j.rowid AS jix, c.cls, j.censored, coalesce(j.outcome, 'dropped') AS outcome, j.journey_id,
                           CASE WHEN j.censored THEN c.known END AS known_outcome, j.censored AS tracked, j.end_ts,
                           TIMESTAMP '{DATA_END}' AS data_end
                    FROM journeys j JOIN (VALUES {outcomes}) c(journey_id, cls, known) USING (journey_id)""")
    return con


@pytest.mark.parametrize("order", ["journey_id, step", "hash(event_id)"], ids=["stored-sorted", "unsorted"])
def test_fetch_groups_each_journey_in_step_order(tmp_path, monkeypatch, order) -> None:
    monkeypatch.setattr(step_arrays, "FETCH_ROWS", 2)  # journeys cut across batches must come out whole
    con = _db(tmp_path, order)
    steps = step_arrays.fetch(con, "main")
    ids = steps.journey_ids.to_pylist()
    got: dict[str, list] = {}
    for jix, code, ts in zip(steps.jix, steps.state, steps.ts):
        got.setdefault(ids[jix], []).append((None if code < 0 else steps.names[code].as_py(), ts))
    assert len({ids[j] for j in steps.jix[np.r_[True, steps.jix[1:] != steps.jix[:-1]]]}) == len(JOURNEYS)  # one run each
    want = {jid: [(s, int((T0 + timedelta(seconds=at)).timestamp() * 1_000_000)) for s, at in st]
            for jid, (_, _, _, st) in JOURNEYS.items()}
    assert got == want  # the stray step is gone, NULL states kept as -1
    last = dict(zip((ids[j] for j in steps.last_ts()[0]), steps.last_ts()[1]))
    assert last["j4"] == want["j4"][-1][1]


def test_lookup_falls_back_to_strings_when_hashes_collide() -> None:
    runs = step_arrays._Runs()
    runs.add(pa.array(["b", "b", "c"]), pa.array([0, 1, 0], pa.int32()), pa.array(["x", "y", "x"]),
             pa.array([0, 0, 0], pa.timestamp("us")))
    ids = pa.table({"jix": [10, 11, 12], "journey_id": ["a", "b", "c"], "h": pa.array([7, 7, 9], pa.uint64())})
    assert step_arrays._lookup(duckdb.connect(), runs, ids, np.array([10, 11, 12])).tolist() == [11, 12]


def test_hashes_come_back_in_the_strings_order() -> None:
    """DuckDB scans a large Arrow table out of order with preserve_insertion_order off (as a build sets it)."""
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET preserve_insertion_order = false")
    strings = pa.array([f"j{i}" for i in range(800_000)])
    got = step_arrays._hashes(con, strings)
    want = con.sql("SELECT hash('j' || i::VARCHAR) FROM range(800000) t(i) ORDER BY i").fetchnumpy()
    assert np.array_equal(got, next(iter(want.values())))


def _journeys(con):
    steps = step_arrays.fetch(con, "main")
    return steps, step_counts.journeys(con, "per", steps.size)


def test_resolved_steps_of_open_journeys(tmp_path) -> None:
    steps, jr = _journeys(_db(tmp_path, "journey_id, step"))
    got = {(c, s, n): k for c, s, n, k in zip(*step_counts.count_partial_steps(steps, jr, 86_401).to_pydict().values())}
    # j3: both steps resolved, the last to its known outcome; j4: only a (b entered 1 d before the data end)
    assert got == {(2, "a", "b"): 2, (2, "b", "converted"): 1}
    assert step_counts.count_partial_steps(steps, jr, None).num_rows == 0


def test_a_resolved_step_without_destination_is_refused(tmp_path) -> None:
    steps, jr = _journeys(_db(tmp_path, "journey_id, step"))
    with pytest.raises(ValueError, match="no destination"):
        step_counts.count_partial_steps(steps, jr, 3600)  # j4's b is resolved by then, its outcome unknown


def test_outcome_adjacent_counts_visits_just_before_the_outcome(tmp_path) -> None:
    steps, jr = _journeys(_db(tmp_path, "journey_id, step"))
    table = outcome_adjacent.class_counts(steps, jr, "dropped")
    assert list(zip(*table.to_pydict().values())) == [(1, "c", "converted", 1)]  # j2 dropped: no outcome event


@pytest.mark.parametrize("base", [paths._BASE, np.uint64(0)], ids=["hashed", "every-hash-collides"])
def test_path_ids_are_equal_exactly_when_paths_are(monkeypatch, base) -> None:
    monkeypatch.setattr(paths, "_BASE", base)
    rng = np.random.default_rng(5)
    lengths = rng.integers(1, 5, 300)
    state = rng.integers(0, 3, int(lengths.sum()))
    starts = np.cumsum(lengths) - lengths
    joined, ids = paths.journey_paths(state, starts, pa.array(["a", "b", "c"]))
    want = [paths.SEP.join("abc"[s] for s in state[a:a + n]) for a, n in zip(starts, lengths)]
    assert joined.to_pylist() == want
    assert all((ids[i] == ids[j]) == (want[i] == want[j]) for i in range(0, 300, 7) for j in range(300))
    distinct, same_ids = paths.path_ids(state, starts, pa.array(["a", "b", "c"]))
    assert np.array_equal(same_ids, ids) and sorted(distinct.to_pylist()) == sorted(set(want))  # each path once


def test_a_run_continued_over_several_batches_is_one_run() -> None:
    runs = step_arrays._Runs()
    for ids in (["a", "a"], ["a", "a"], ["a", "b"], ["b"]):  # the middle batch only continues the run
        n = len(ids)
        runs.add(pa.array(ids), pa.array(range(n), pa.int32()), pa.array(["x"] * n), pa.array([0] * n, pa.timestamp("us")))
    assert runs.run_ids().to_pylist() == ["a", "b"] and runs.lengths().tolist() == [5, 2]


def test_runs_of_gone_ids_are_left_out_as_read() -> None:
    runs = step_arrays._Runs()
    gone = pa.array(["b", "z"])
    for ids in (["a", "b"], ["b", "c", "c"], ["d"]):  # b's run spans two batches
        n = len(ids)
        runs.add(pa.array(ids), pa.array(range(n), pa.int32()), pa.array(["x"] * n), pa.array(range(n), pa.timestamp("us")),
                 gone)
    assert runs.run_ids().to_pylist() == ["a", "c", "d"] and runs.lengths().tolist() == [1, 2, 1]
    assert np.concatenate(runs.times).tolist() == [0, 1, 2, 0]


@pytest.mark.parametrize("gone", [["b", "z", "a0", ""], ["b", None, "zz"], [None], []], ids=["plain", "null", "only-null", "none"])
def test_among_says_what_is_in_says(gone) -> None:
    rng = np.random.default_rng(7)
    pool = ["", "a", "a0", "b", "b\x00", "c", "zz", "é"]
    gone_ids = pa.array(gone, pa.string())
    for values in ([pool[i] for i in rng.integers(0, len(pool), 40)], ["b", None, "c"], [None, None], ["a", "zz"]):
        got = step_arrays._among(pa.array(values, pa.string()), gone_ids)
        assert got.to_pylist() == pa.compute.fill_null(pa.compute.is_in(pa.array(values, pa.string()),
                                                                         value_set=gone_ids), False).to_pylist()


def test_a_batch_whose_last_run_is_gone_ends_with_the_run_before() -> None:
    """The run a batch ends with, for the next batch to continue, is its last run kept: a gone run is not read."""
    runs = step_arrays._Runs()
    for ids in (["a", "b", "b"], ["a", "c"], ["b"], ["c", "d"]):  # b gone: a goes on over it, c over the batch of b
        n = len(ids)
        runs.add(pa.array(ids), pa.array(range(n), pa.int32()), pa.array(["x"] * n), pa.array(range(n), pa.timestamp("us")),
                 pa.array(["b"]))
    assert runs.run_ids().to_pylist() == ["a", "c", "d"] and runs.lengths().tolist() == [2, 2, 1]
    assert np.concatenate(runs.times).tolist() == [0, 0, 1, 0, 1]


def test_row_groups_of_one_journey_are_taken_whole_by_their_statistics(tmp_path, monkeypatch) -> None:
    import pyarrow.parquet as pq

    n = 6
    table = pa.table({"journey": pa.array(["main"] * 2 + ["main", "other"] + ["main", None], pa.string()),
                      "journey_id": pa.array([f"j{i}" for i in range(n)]), "step": pa.array([0] * n, pa.int32()),
                      "state": pa.array(["a"] * n), "ts": pa.array(range(n), pa.timestamp("us"))})
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=2)
    meta = pq.ParquetFile(tmp_path / "f.parquet").metadata
    only = [step_arrays._only(meta.row_group(g).column(0), "main") for g in range(3)]
    assert only == [True, False, False]  # another journey, a NULL: looked at
    looked = []
    real = step_arrays._matching
    monkeypatch.setattr(step_arrays, "_matching", lambda column, value: looked.append(len(column)) or real(column, value))
    runs = step_arrays._read([(str(tmp_path / "f.parquet"), False)], "main", None)
    assert runs is not None and runs.run_ids().to_pylist() == ["j0", "j1", "j2", "j4"] and looked == [2, 2]


def _partial_reference(steps, jr, horizon_s):
    """count_partial_steps as first written (every open step's outcome and next state, then the resolved ones)."""
    open_ = jr.counted & jr.censored & jr.tracked
    rows = open_[steps.jix] & (steps.state >= 0)
    jix, state, ts = steps.jix[rows], steps.state[rows], steps.ts[rows]
    last = np.ones(len(jix), dtype=bool)
    last[:-1] = jix[1:] != jix[:-1]
    data_end = jr.data_end_us[jix]
    resolved = (ts != step_arrays.NULL_TS) & (data_end != step_arrays.NULL_TS) & (ts + horizon_s * 1_000_000 <= data_end)
    outcome = jr.outcome[jix]
    if np.any(resolved & last & (outcome < 0)):
        raise ValueError("no destination")
    nxt = np.where(last, len(steps.names) + outcome, np.roll(state, -1))[resolved]
    symbols = steps.names.to_pylist() + jr.outcome_names.to_pylist()
    out: dict[tuple, int] = {}
    for key in zip(jr.cls[jix[resolved]].tolist(), state[resolved].tolist(), nxt.tolist()):
        out[key] = out.get(key, 0) + 1
    return {(c, symbols[s], symbols[n]): k for (c, s, n), k in out.items()}


@pytest.mark.parametrize("seed", range(6))
def test_partial_steps_match_the_step_by_step_rule(seed) -> None:
    """Random journeys: NULL states and times, NULL data ends, steps exactly `horizon` before the data end."""
    rng = np.random.default_rng(seed)
    n, horizon = 40, 3600
    lens = rng.integers(0, 6, n)
    jix = np.repeat(np.arange(n), lens)
    data_end = np.where(rng.random(n) < 0.1, step_arrays.NULL_TS, 10_000_000_000)
    ts = np.maximum(data_end[jix], 0) - horizon * 1_000_000 + rng.integers(-3, 3, len(jix)) * 1_000_000
    ts = np.where(rng.random(len(jix)) < 0.1, step_arrays.NULL_TS, ts)
    state = np.where(rng.random(len(jix)) < 0.1, -1, rng.integers(0, 4, len(jix)))
    steps = step_arrays.StepArrays(jix=jix, state=state, names=pa.array(list("abcd")), ts=ts, size=n,
                                   journey_ids=pa.array([f"j{i}" for i in range(n)]))
    outcome = np.where(rng.random(n) < (0.1 if seed % 2 else 0.0), -1, rng.integers(0, 2, n))
    jr = step_counts.Journeys(counted=rng.random(n) < 0.9, cls=rng.integers(0, 3, n), censored=rng.random(n) < 0.8,
                              tracked=rng.random(n) < 0.9, outcome=outcome, outcome_names=pa.array(["dropped", "won"]),
                              heldout=np.zeros(n, np.int64), end_us=np.full(n, step_arrays.NULL_TS), data_end_us=data_end)
    try:
        want = _partial_reference(steps, jr, horizon)
    except ValueError:
        with pytest.raises(ValueError, match="no destination"):
            step_counts.count_partial_steps(steps, jr, horizon)
        return
    got = step_counts.count_partial_steps(steps, jr, horizon).to_pydict()
    assert {(c, s, x): k for c, s, x, k in zip(got["cls"], got["state"], got["next"], got["c"])} == want and want
