"""engine.step_arrays reads the gold step files itself (base less superseded, delta, sealed) when `journey_steps` is
the workspace's manifest view: the same steps as DuckDB's scan of the view, against real files of two runs."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import silver, step_arrays
from engine.dbsettings import engine_settings

N = 400  # journeys of `main`; `other` interleaves its ids with them


def _steps(jid: str, seed: int) -> list[tuple[str | None, int | None]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str | None, int | None]] = []
    for k in range(int(rng.integers(1, 7))):
        state = None if rng.random() < 0.05 else f"s{int(rng.integers(0, 6))}"
        out.append((state, None if rng.random() < 0.03 else 1_000 * k + int(rng.integers(0, 999))))
    return out


def _insert(con: duckdb.DuckDBPyConnection, journeys: dict[tuple[str, str], list]) -> None:
    silver.make_temp_table(con, "journey_steps")
    rows = [(name, jid, k, state, at, f"{jid}-{k}")
            for (name, jid), steps in journeys.items() for k, (state, at) in enumerate(steps)]
    new = pa.table({c: list(v) for c, v in zip(("journey", "journey_id", "step", "state", "secs", "event_id"), zip(*rows))})
    con.register("_new", new)
    con.execute("INSERT INTO journey_steps SELECT journey, journey_id, step, state, "
                "TIMESTAMP '2026-01-05' + to_seconds(secs), event_id FROM _new")
    con.unregister("_new")


@pytest.fixture(params=["many", "last-id-only"])
def ws(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[duckdb.DuckDBPyConnection, dict[str, list]]:
    """A workspace after a full run (open base + sealed files) and an incremental one (a delta, superseded base rows);
    `last-id-only`: the run changes just the base's last journey, so the delta starts with the id the base ends on."""
    con = duckdb.connect(str(tmp_path / "ws.duckdb"))
    silver.attach(con, tmp_path, writable=True)
    ids = [f"j{i:04d}" for i in range(N)]
    truth = {(name, jid): _steps(jid, i + (7 if name == "other" else 0)) for i, jid in enumerate(ids)
             for name in ("main", "other") if name == "main" or i % 3 == 0}
    _insert(con, truth)
    silver.persist_steps(con, sealed_ids="SELECT journey_id FROM temp.main.journey_steps WHERE journey_id < 'j0150'")
    open_ids = [j for j in ids if j >= "j0150"]
    changed = open_ids[::4] if request.param == "many" else [max(open_ids)]
    moved = open_ids[1::9] if request.param == "many" else []  # superseded without new steps (sealed, say)
    update = {("main", j): _steps(j, 1000 + i) for i, j in enumerate(changed)}
    truth |= update
    for j in moved:
        truth.pop(("main", j))
        truth.pop(("other", j), None)
    _insert(con, update)
    silver.persist_steps(con, keep_sealed=True, superseded_ids=f"SELECT unnest({moved!r}::VARCHAR[]) AS journey_id")
    con.execute("""CREATE TABLE journeys (journey VARCHAR, journey_id VARCHAR)""")
    kept = [j for j in reversed(ids) if ("main", j) in truth and j != "j0003"]  # rowids not in id order; one id lacking
    con.execute("INSERT INTO journeys SELECT 'main', unnest(?::VARCHAR[])", [kept])
    return con, {jid: steps for (name, jid), steps in truth.items() if name == "main" and jid != "j0003"}


def _by_journey(steps: step_arrays.StepArrays) -> dict[str, list]:
    ids, names = steps.journey_ids.to_pylist(), steps.names.to_pylist()
    out: dict[str, list] = {}
    for jix, code, ts in zip(steps.jix.tolist(), steps.state.tolist(), steps.ts.tolist()):
        out.setdefault(ids[jix], []).append((None if code < 0 else names[code], ts))
    return out


def test_files_read_directly_give_the_views_steps(ws, monkeypatch) -> None:
    con, truth = ws
    assert con.execute(f"SELECT count(*) FROM {silver.SUPERSEDED}").fetchall()[0][0] > 0
    assert len(silver.files(con, silver.OPEN_DELTA)) == 1 and silver.files(con, silver.SEALED_STEPS)
    with engine_settings(con):  # preserve_insertion_order off, as in a build
        fast = step_arrays.fetch(con, "main")
        assert step_arrays._gold_files(con) is not None  # the files were read, not the view
        monkeypatch.setattr(step_arrays, "_gold_files", lambda con: None)
        scanned = step_arrays.fetch(con, "main")
    t0 = 1_767_571_200_000_000  # 2026-01-05 in µs
    want = {jid: [(state, step_arrays.NULL_TS if at is None else t0 + at * 1_000_000) for state, at in steps]
            for jid, steps in truth.items()}
    assert _by_journey(fast) == want
    assert _by_journey(scanned) == want
    new = np.r_[True, fast.jix[1:] != fast.jix[:-1]]
    assert new.sum() == len(np.unique(fast.jix))  # one run per journey


def test_a_view_other_than_the_manifests_is_scanned(ws) -> None:
    con, truth = ws
    con.execute("CREATE OR REPLACE TEMP VIEW journey_steps AS SELECT * FROM read_parquet("
                f"{[str(silver.root_of(con) / p) for p in silver.files(con, silver.SEALED_STEPS)]!r})")
    assert step_arrays._gold_files(con) is None
    got = _by_journey(step_arrays.fetch(con, "main"))
    assert set(got) == {j for j in truth if j < "j0150"}
