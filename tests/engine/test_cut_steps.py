"""engine.cut_steps: a full run's buffered steps give the gold files (bytes, names, counts, digests) that the
same steps give through the TEMP journey_steps table, and an incremental run's buffer goes back to the table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engine import cut_steps, journeys, silver

SEALED = "SELECT journey_id FROM cuts WHERE sealed"
IDS = "SELECT journey_id FROM cuts"
MANIFEST = "SELECT layer, part, path, rows, digest, sha256 FROM parquet_files ORDER BY ALL"


def _chunks(seed: int) -> list[tuple[str, pa.Array, pa.Table]]:
    """(journey, ids, steps) chunks as engine.journeys._insert hands them over: ids in no id order, some
    journeys without steps, two definitions whose chunks alternate, states coded against different dictionaries."""
    rng = np.random.default_rng(seed)
    out = []
    for c in range(6):
        n = int(rng.integers(50, 400))
        ids = pa.array([f"{rng.integers(0, 16**12):012x}{c:02d}{j:05d}" for j in range(n)])
        counts = rng.integers(0, 6, n)
        jidx = np.repeat(np.arange(n), counts)
        step = np.arange(len(jidx)) - np.repeat(np.cumsum(counts) - counts, counts)
        out.append(("main" if c % 2 == 0 else "o'ther", ids, pa.table({
            "jidx": jidx, "step": step.astype(np.int32),
            "state": pa.DictionaryArray.from_arrays(  # as the cut gives them: a dictionary per fetched part
                pa.array(rng.integers(0, 5, len(jidx)).astype(np.int32)), pa.array([f"s{(v * c) % 7}" for v in range(5)])),
            "ts": pa.array(rng.integers(1_700_000_000, 1_800_000_000, len(jidx)) * 1_000_000, pa.timestamp("us")),
            "event_id": pa.array([f"e{c}-{i}" for i in range(len(jidx))])})))
    return out


def _workspace(root: Path, chunks: list[tuple[str, pa.Array, pa.Table]], buffered: bool) -> duckdb.DuckDBPyConnection:
    """A workspace connection whose cut steps are buffered, or (reference) inserted into journey_steps by SQL."""
    root.mkdir()
    con = duckdb.connect(str(root / "ws.duckdb"))
    silver.attach(con, root, writable=True)
    silver.make_temp_table(con, "journey_steps")
    con.execute("CREATE TABLE cuts (journey_id VARCHAR, sealed BOOLEAN)")
    buffer = cut_steps.start(con) if buffered else None
    for i, (name, ids, steps) in enumerate(chunks):
        with_steps = np.unique(steps.column("jidx").to_numpy())
        cuts = pa.table({"journey_id": ids.take(with_steps), "sealed": with_steps % 3 == i % 2})
        con.register("cuts_arrow", cuts)
        con.execute("INSERT INTO cuts SELECT * FROM cuts_arrow")
        con.unregister("cuts_arrow")
        if buffer is not None:
            buffer.add(name, ids, steps)
            continue
        rows = steps.append_column("journey_id", ids.take(steps.column("jidx")))
        con.register("steps_arrow", rows)
        con.execute("INSERT INTO journey_steps SELECT $n, journey_id, step, state, ts, event_id FROM steps_arrow", {"n": name})
        con.unregister("steps_arrow")
    return con


@pytest.fixture(autouse=True)
def small_row_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of 700 rows against row groups of 122 880: many batches per file, cut again by the writer."""
    monkeypatch.setattr(cut_steps, "ROW_GROUP", 700)


@pytest.mark.parametrize("seed", [1, 2])
def test_buffered_steps_give_the_same_files_as_the_table(tmp_path: Path, seed: int) -> None:
    chunks = _chunks(seed)
    manifests = []
    for buffered in (False, True):
        con = _workspace(tmp_path / str(buffered), chunks, buffered)
        silver.persist_steps(con, sealed_ids=SEALED, journey_ids=IDS)
        manifests.append(con.execute(MANIFEST).fetchall())
        assert cut_steps.of(con) is None
    assert len(manifests[0]) == 4 and manifests[0] == manifests[1]


def test_many_row_groups_are_cut_as_from_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import engine.parquet_files as pf

    monkeypatch.setattr(pf, "ROW_GROUP", 1000)  # the writer's row groups: several per file
    monkeypatch.setattr(pf.row_groups, "__defaults__", (1000,))
    chunks = _chunks(3)
    manifests = []
    for buffered in (False, True):
        con, manifest = _persisted(tmp_path, chunks, buffered)
        manifests.append(manifest)
        groups = [pf.pq.ParquetFile(str(tmp_path / str(buffered) / p)).num_row_groups
                  for (p,) in con.execute("SELECT path FROM parquet_files").fetchall()]
        assert max(groups) > 1
    assert manifests[0] == manifests[1]


def _persisted(tmp_path: Path, chunks: Any, buffered: bool) -> tuple[Any, list[tuple]]:
    """A workspace whose steps `persist_steps` wrote (from the buffer or the table) and its manifest."""
    con = _workspace(tmp_path / str(buffered), chunks, buffered)
    silver.persist_steps(con, sealed_ids=SEALED, journey_ids=IDS)
    return con, con.execute(MANIFEST).fetchall()


@pytest.mark.parametrize("at_once", [2, 3])
def test_digests_taken_several_batches_at_once_are_the_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               at_once: int) -> None:
    """Batches of 50 rows digested `at_once` at a time (files of several such groups, the last one short):
    each file's digest is the XOR the table's SQL takes over all its rows."""
    monkeypatch.setattr(cut_steps, "ROW_GROUP", 50)
    monkeypatch.setattr(cut_steps, "DIGEST_BATCHES", at_once)
    chunks = _chunks(5)
    manifests = [_persisted(tmp_path, chunks, buffered)[1] for buffered in (False, True)]
    assert min(rows for _, _, _, rows, _, _ in manifests[0]) > 50 * at_once * 2
    assert manifests[0] == manifests[1]


def test_an_incremental_write_puts_the_buffer_back_into_the_table(tmp_path: Path) -> None:
    chunks = _chunks(4)
    results = []
    for buffered in (False, True):
        con = _workspace(tmp_path / str(buffered), chunks, buffered)
        silver.persist_steps(con, sealed_ids=SEALED, keep_sealed=True, journey_ids=IDS,
                             superseded_ids="SELECT journey_id FROM cuts WHERE NOT sealed")
        results.append((con.execute(MANIFEST).fetchall(),
                        con.execute(f"SELECT * FROM {silver.SUPERSEDED} ORDER BY ALL").fetchall()))
    assert results[0][0] and results[0] == results[1]


def test_buffered_steps_of_a_journey_the_ids_lack_are_refused(tmp_path: Path) -> None:
    con = _workspace(tmp_path / "ws", _chunks(5), buffered=True)
    with pytest.raises(RuntimeError, match="lack"):
        silver.persist_steps(con, journey_ids=f"{IDS} LIMIT 10")


def test_a_full_run_hands_every_step_to_the_buffer_not_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.app import pipeline
    from tests.engine.hostile import base_events, config_file, dumps, write_lines

    seen = []
    real = silver.persist_steps

    def persist(con: duckdb.DuckDBPyConnection, *args: object, **kwargs: object) -> None:
        buffer = cut_steps.of(con)
        seen.append((len(buffer) if buffer else 0, con.execute("SELECT count(*) FROM temp.main.journey_steps").fetchall()[0][0]))
        real(con, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(silver, "persist_steps", persist)
    src = write_lines(tmp_path / "events.jsonl", dumps(base_events(160)))
    pipeline.run(str(src), str(config_file(tmp_path / "c.yaml")), str(tmp_path / "ws"), quiet=True)
    (buffered, in_table), = seen
    con = duckdb.connect(str(tmp_path / "ws" / "journeygraph.duckdb"), read_only=True)
    stored = con.execute("SELECT sum(rows) FROM parquet_files WHERE layer LIKE 'journey_steps%'").fetchall()[0][0]
    assert in_table == 0 and buffered == stored > 0


def test_past_the_budget_the_steps_go_to_the_table_with_the_same_files(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """More than MAX_STEPS steps: the buffer goes back to the TEMP table (which DuckDB can spill), the rest of
    the cut follows it there, and the gold files are those a run that buffered everything writes."""
    from engine.app import pipeline
    from tests.engine.hostile import base_events, config_file, dumps, write_lines

    src = write_lines(tmp_path / "events.jsonl", dumps(base_events(160)))
    cfg = config_file(tmp_path / "c.yaml")
    pipeline.run(str(src), str(cfg), str(tmp_path / "all"), quiet=True)
    seen = []
    real = silver.persist_steps

    def persist(con: duckdb.DuckDBPyConnection, *args: object, **kwargs: object) -> None:
        seen.append((cut_steps.of(con), con.execute("SELECT count(*) FROM temp.main.journey_steps").fetchall()[0][0]))
        real(con, *args, **kwargs)  # type: ignore[arg-type]

    def manifest(ws: str) -> list[tuple]:
        con = duckdb.connect(str(tmp_path / ws / "journeygraph.duckdb"), read_only=True)
        try:
            return con.execute(MANIFEST.replace("ORDER BY", "WHERE layer LIKE 'journey_steps%' ORDER BY")).fetchall()
        finally:
            con.close()

    total = sum(row[3] for row in manifest("all"))
    flushed = []
    real_insert = cut_steps.StepBuffer.insert_into

    def insert_into(self: cut_steps.StepBuffer, con: duckdb.DuckDBPyConnection, table: str) -> None:
        flushed.append(len(self))
        real_insert(self, con, table)

    monkeypatch.setattr(silver, "persist_steps", persist)
    monkeypatch.setattr(cut_steps.StepBuffer, "insert_into", insert_into)
    monkeypatch.setattr(journeys, "CHUNK_EVENTS", 60)  # several chunks: some buffered before the budget is passed
    monkeypatch.setattr(cut_steps, "MAX_STEPS", total // 2)
    pipeline.run(str(src), str(cfg), str(tmp_path / "spill"), quiet=True)
    (buffer, in_table), = seen
    assert buffer is None and in_table == total > 0
    assert len(flushed) == 1 and 0 < flushed[0] <= total // 2
    assert manifest("all") == manifest("spill")
