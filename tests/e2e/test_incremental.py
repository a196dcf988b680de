"""Incremental runs on the Parquet layers give what a full recompute gives, byte for byte (engine.incremental)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from engine import silver
from engine.app import pipeline
from engine.config import load_config
from engine.incremental import FULL_ENV
from engine.workspace import Workspace
from ontology.validation import validate
from tests.e2e.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
CUTS = ("2026-02-10", "2026-02-24")  # the demo's 9 weeks in three growing steps


def _demo_parts() -> list[list[str]]:
    rows = [json.loads(line) for line in (ROOT / "fixtures" / "demo_events.jsonl").read_text().splitlines() if line]
    rows.sort(key=lambda r: r["timestamp"])
    parts: list[list[str]] = [[], [], []]
    for row in rows:
        parts[sum(row["timestamp"] >= cut for cut in CUTS)].append(json.dumps(row))
    return parts


def _config(tmp: Path, base: Path) -> Path:
    text = (base).read_text().replace("source: demo_events.jsonl", f"source: {tmp / 'data' / '*.jsonl'}")
    path = tmp / "cfg.yaml"
    path.write_text(text)
    return path


def _grow(tmp: Path, ws: Path, cfg: Path, parts: list[list[str]], monkeypatch: pytest.MonkeyPatch,
          full: bool) -> list[dict[str, Any]]:
    """Run once per part, each time with one more file in the source folder; the run summaries."""
    data = tmp / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    monkeypatch.setenv(FULL_ENV, "1" if full else "0")
    summaries = []
    for i, part in enumerate(parts):
        (data / f"part{i}.jsonl").write_text("\n".join(part) + "\n")
        summaries.append(pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True))
    return summaries


def _outputs(ws: Path) -> dict[str, Any]:
    """Everything a reader sees, in a fixed order: snapshots, feed, findings, the derived tables, silver files."""
    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        queries = {
            "snapshots": "SELECT snapshot_id, payload::VARCHAR FROM snapshots ORDER BY snapshot_id",
            "feed": "SELECT rank, item::VARCHAR FROM feed ORDER BY rank",
            "insights": "SELECT insight_id, payload::VARCHAR FROM insights ORDER BY insight_id",
            "events": "SELECT * FROM events ORDER BY tenant_id, actor_id, seq",
            "journeys": "SELECT * FROM journeys ORDER BY journey, journey_id",
            "journey_progress": "SELECT * FROM journey_progress ORDER BY journey, journey_id",
            "journey_steps": "SELECT * FROM journey_steps ORDER BY journey, journey_id, step",
            "silver": "SELECT tenant_id, part, path FROM parquet_files WHERE layer = 'events' ORDER BY ALL",
        }
        return {name: con.execute(sql).fetchall() for name, sql in queries.items()}
    finally:
        con.close()


def test_growing_source_gives_the_full_recompute_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parts = _demo_parts()
    cfg = _config(tmp_path, ROOT / "fixtures" / "demo.yaml")
    inc = _grow(tmp_path, tmp_path / "inc", cfg, parts, monkeypatch, full=False)
    full = _grow(tmp_path, tmp_path / "full", cfg, parts, monkeypatch, full=True)
    assert [s["incremental"]["mode"] for s in inc] == ["full", "incremental", "incremental"]
    assert [s["incremental"]["mode"] for s in full] == ["full"] * 3
    assert [s["events_read_this_run"] for s in inc] == [len(p) for p in parts]
    assert inc[2]["incremental"]["files_reused"] == 2 and inc[2]["incremental"]["journeys_reused"] > 0
    assert inc[2]["incremental"]["partitions_reused"] > inc[2]["incremental"]["partitions_written"] > 0
    # sealed periods: computed by the second run, reused by the third, always computed under a full recompute
    assert inc[2]["incremental"]["snapshots_sealed"] > inc[1]["incremental"]["snapshots_sealed"] > 0
    assert inc[2]["incremental"]["snapshots_reused"] == inc[1]["incremental"]["snapshots_sealed"]
    assert inc[1]["incremental"]["snapshots_reused"] == inc[0]["incremental"]["snapshots_sealed"]
    assert all(s["incremental"]["snapshots_reused"] == 0 for s in full)
    for key in ("events_read", "accepted", "duplicates", "bots_filtered", "late_rejected", "actors", "journeys",
                "censored", "snapshots", "findings", "insights"):
        assert inc[2][key] == full[2][key], key
    a, b = _outputs(tmp_path / "inc"), _outputs(tmp_path / "full")
    for name in a:
        assert a[name] == b[name], name
    con = Workspace.open(tmp_path / "inc", read_only=True, create=False).con
    sealed = con.execute("SELECT count(*) FROM parquet_files WHERE layer = 'journey_steps_sealed'").fetchall()[0][0]
    open_steps = con.execute("SELECT sum(rows) FROM parquet_files WHERE layer = 'journey_steps'").fetchall()[0][0]
    con.close()
    assert sealed == 3 and 0 < open_steps < len(a["journey_steps"]) / 2  # each run sealed some journeys for good
    # one recompute over all three files in a fresh workspace: the same latest snapshots and silver files
    monkeypatch.setenv(FULL_ENV, "1")
    pipeline.run(config_path=str(cfg), workspace=str(tmp_path / "once"), quiet=True)
    once = _outputs(tmp_path / "once")
    assert set(once["snapshots"]) <= set(a["snapshots"])
    assert once["silver"] == a["silver"] and once["events"] == a["events"] and once["journeys"] == a["journeys"]


@pytest.mark.parametrize("folds", [(False, False), (False, True), (True, True)])
def test_open_base_stays_and_changes_go_to_a_delta_until_folded_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   folds: tuple[bool, bool]) -> None:
    """An incremental run writes only the journeys it changes (the delta) and marks their base steps superseded,
    or (compaction due) writes the open steps as a new base. Runs 2 and 3 keep or fold as `folds` says; the
    tables are the full recompute's either way."""
    due = iter(folds)
    monkeypatch.setattr(silver, "open_compaction_due", lambda con, incoming=0: next(due))
    parts, cfg = _demo_parts(), _config(tmp_path, ROOT / "fixtures" / "demo.yaml")
    data, ws = tmp_path / "data", tmp_path / "inc"
    data.mkdir()
    monkeypatch.setenv(FULL_ENV, "0")
    layers = []
    for i, part in enumerate(parts):
        (data / f"part{i}.jsonl").write_text("\n".join(part) + "\n")
        pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)
        con = Workspace.open(ws, read_only=True, create=False).con
        rows = con.execute("SELECT layer, path FROM parquet_files WHERE layer LIKE 'journey_steps%'").fetchall()
        kept = con.execute(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = '{silver.SUPERSEDED}'").fetchall()[0][0]
        superseded = con.execute(f"SELECT count(*) FROM {silver.SUPERSEDED}").fetchall()[0][0] if kept else 0
        con.close()
        layers.append(({p for layer, p in rows if layer == "journey_steps"},
                       {p for layer, p in rows if layer == silver.OPEN_DELTA}, superseded))
    assert next(due, None) is None  # one decision per incremental run
    base, delta, superseded = zip(*layers)
    assert not delta[0] and superseded[0] == 0  # a full run: the open steps are the base
    for run, fold in ((1, folds[0]), (2, folds[1])):
        if fold:  # the open steps written as a new base: no delta, nothing superseded
            assert base[run] != base[run - 1] and not delta[run] and superseded[run] == 0, run
        else:  # the base kept, the changed journeys in a new delta, their base steps superseded
            assert base[run] == base[run - 1] and delta[run] and delta[run] != delta[run - 1], run
            assert superseded[run] > superseded[run - 1], run
    full = _grow(tmp_path, tmp_path / "full", cfg, parts, monkeypatch, full=True)
    assert full[-1]["incremental"]["mode"] == "full"
    a, b = _outputs(ws), _outputs(tmp_path / "full")
    for name in a:
        assert a[name] == b[name], name


def test_two_tenants_and_two_journeys_match_a_full_recompute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two tenants with their own data ends (the platform as tenant: web's last events a week earlier) and two
    journey definitions: each tenant's data end decides which stored journeys stop being censored, per definition."""
    rows = [[json.loads(line) for line in part] for part in _demo_parts()]
    rows[2] = [r for r in rows[2] if r.get("platform") != "web" or r["timestamp"] < "2026-03-01"]  # web's data end: a week earlier
    parts = [[json.dumps({**r, "tenant_id": r.get("platform")}) for r in part] for part in rows]
    cfg = _config(tmp_path, ROOT / "fixtures" / "demo.yaml")
    cfg.write_text(cfg.read_text().replace("journeys:\n", """journeys:
  projects:
    level: semantic
    start: create_project
    outcomes:
      invited: "event_name = 'invite_sent'"
      quiet: {inactive_for: 3d}
    window: 9d
""", 1))
    inc = _grow(tmp_path, tmp_path / "inc", cfg, parts, monkeypatch, full=False)
    full = _grow(tmp_path, tmp_path / "full", cfg, parts, monkeypatch, full=True)
    assert [s["incremental"]["mode"] for s in inc] == ["full", "incremental", "incremental"]
    a, b = _outputs(tmp_path / "inc"), _outputs(tmp_path / "full")
    tenants = {row[1] for row in a["journeys"]}
    names = {row[0] for row in a["journeys"]}
    assert len(tenants) >= 2 and names == {"activation", "projects"}
    for name in a:
        assert a[name] == b[name], name
    assert inc[2]["censored"] == full[2]["censored"] > 0
    con = Workspace.open(tmp_path / "inc", read_only=True, create=False).con
    ends = dict(con.execute("SELECT tenant_id, max(ts) FROM events GROUP BY ALL").fetchall())
    con.close()
    assert ends["web"] < min(ends.values()) + timedelta(days=1) < max(ends.values()) - timedelta(days=7)


def test_a_run_that_changes_most_open_steps_writes_the_base(tmp_path: Path) -> None:
    """The compaction rule: delta rows + superseded base rows + the rows the run changes against COMPACT_AT of
    the base's rows (a workspace's manifest and superseded list, counted by silver.open_compaction_due)."""
    con = duckdb.connect()
    silver.attach(con, tmp_path, writable=True)
    (tmp_path / "gold").mkdir()
    con.execute("COPY (SELECT 'j' || (i % 100) AS journey_id FROM range(1000) t(i)) TO '" + str(tmp_path / "gold" / "b.parquet") + "'")
    con.execute(f"INSERT INTO {silver.MANIFEST} VALUES ('journey_steps', '', 'main', 'gold/b.parquet', 1000, 0, NULL, '')")
    assert not silver.open_compaction_due(con) and not silver.open_compaction_due(con, incoming=500)
    assert silver.open_compaction_due(con, incoming=501)  # more than half the base's rows change
    con.execute(f"CREATE TABLE {silver.SUPERSEDED} AS SELECT 'j' || i AS journey_id FROM range(30) t(i)")  # 300 rows dead
    con.execute(f"INSERT INTO {silver.MANIFEST} VALUES ('{silver.OPEN_DELTA}', '', 'main', 'gold/d.parquet', 150, 0, NULL, '')")
    assert not silver.open_compaction_due(con, incoming=50) and silver.open_compaction_due(con, incoming=51)


def _ev(eid: str, user: str, name: str, ts: str, **extra: Any) -> str:
    return json.dumps({"event_id": eid, "user_id": user, "event_name": name, "timestamp": ts, **extra})


_SMALL = """source: {src}
normalize:
  dedupe_window: 24h
  late_arrival_tolerance: 1h
  identity: {{alias_events: ["identify"]}}
journeys:
  activation:
    start: sign_up
    window: 3d
    outcomes:
      converted: "event_name = 'paid'"
      dropped: {{inactive_for: 1d}}
"""


def _small_parts() -> list[list[str]]:
    first = [_ev(f"a{i}", f"u{i}", "sign_up", f"2026-01-0{1 + i % 3}T10:00:00Z") for i in range(6)]
    first += [_ev(f"b{i}", f"u{i}", "paid", f"2026-01-0{2 + i % 3}T09:00:00Z") for i in range(0, 6, 2)]
    second = [_ev("a0", "u0", "sign_up", "2026-01-01T10:00:00Z"),      # a re-sent stored event: duplicate
              _ev("late1", "u9", "sign_up", "2026-01-02T00:00:00Z"),   # before the watermark minus 1 h: late
              _ev("c1", "u1", "browse", "2026-01-04T09:30:00Z"),       # within the tolerance: accepted
              _ev("c7", "u7", "sign_up", "2026-01-05T00:00:00Z")]
    third = [_ev("d1", "u1", "paid", "2026-01-05T12:00:00Z"), _ev("d7", "u7", "paid", "2026-01-05T13:00:00Z")]
    return [first, second, third]


def test_late_and_resent_events_keep_todays_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    inc = _grow(tmp_path, tmp_path / "inc", cfg, _small_parts(), monkeypatch, full=False)
    full = _grow(tmp_path, tmp_path / "full", cfg, _small_parts(), monkeypatch, full=True)
    assert inc[1]["incremental"]["mode"] == "incremental"
    assert (inc[1]["duplicates"], inc[1]["late_rejected"]) == (full[1]["duplicates"], full[1]["late_rejected"]) == (1, 1)
    a, b = _outputs(tmp_path / "inc"), _outputs(tmp_path / "full")
    for name in a:
        assert a[name] == b[name], name
    outcome = {r[3]: r[6] for r in a["journeys"]}
    # u9's only event was late (no journey); u7 started 13 h before the data end (3-day window: censored);
    # u1's stored journey is cut by the 1-day silence before its new event
    assert "u9" not in outcome and outcome["u7"] is None and outcome["u1"] == "dropped" and outcome["u0"] == "converted"


@pytest.mark.parametrize(("resent", "mode", "reason", "duplicates", "a0_again"), [
    # the stored first occurrence, re-sent within the 24 h dedupe window: a duplicate, decided incrementally
    (_ev("a1", "u1", "sign_up", "2026-01-02T12:00:00Z"), "incremental", "", 1, "a0#2"),
    # the same id 3 days later: a new event with a suffixed id in a full run, so a stored event's fate changes
    (_ev("a1", "u1", "sign_up", "2026-01-05T10:00:00Z"), "full", "outside the dedupe window", 0, "a0#2"),
    # within the window of a0's first occurrence (late), while a0 was also re-sent beyond it in the first file
    # (stored as a0#2): a full run ranks the new one second, so the stored a0#2 would become a0#3
    (_ev("a0", "u0", "sign_up", "2026-01-01T12:00:00Z"), "full", "outside the dedupe window", 1, "a0#3"),
])
def test_new_events_repeating_stored_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resent: str, mode: str,
                                         reason: str, duplicates: int, a0_again: str) -> None:
    """engine.incremental.stored_duplicates: one scan of the stored ids finds plain and suffixed repeats."""
    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    first = _small_parts()[0] + [_ev("a0", "u0", "sign_up", "2026-01-04T09:00:00Z")]  # a0 again after 71 h: a0#2
    parts = [first, [resent, _ev("c7", "u7", "sign_up", "2026-01-05T00:00:00Z")]]
    inc = _grow(tmp_path, tmp_path / "inc", cfg, parts, monkeypatch, full=False)
    full = _grow(tmp_path, tmp_path / "full", cfg, parts, monkeypatch, full=True)
    assert inc[1]["incremental"]["mode"] == mode and reason in inc[1]["incremental"]["reason"]
    assert inc[1]["duplicates"] == full[1]["duplicates"] == duplicates
    assert _outputs(tmp_path / "inc") == _outputs(tmp_path / "full")
    con = Workspace.open(tmp_path / "inc", read_only=True, create=False).con
    try:
        assert con.execute("SELECT event_id FROM events WHERE event_id LIKE 'a0#%'").fetchall() == [(a0_again,)]
    finally:
        con.close()


def test_a_run_with_nothing_new_publishes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run --if-new` with no new file, same config and engine version: the last run's results stand (mode
    `unchanged`), the workspace's database keeps its bytes; a touched file with the same bytes is no news
    either; a config change or a forced full recompute runs again; without the flag a rerun runs."""
    import hashlib
    import os

    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    ws = tmp_path / "inc"
    last = _grow(tmp_path, ws, cfg, _small_parts()[:2], monkeypatch, full=False)[-1]
    db = ws / "journeygraph.duckdb"

    def digest() -> str:
        return hashlib.sha256(db.read_bytes()).hexdigest()

    before = digest()
    stamp = (tmp_path / "data" / "part0.jsonl").stat()
    os.utime(tmp_path / "data" / "part0.jsonl", ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 10**9))  # same bytes
    again = pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True, if_new=True)
    assert again["incremental"]["mode"] == "unchanged" and again["events_read_this_run"] == 0
    assert again["incremental"]["files_read"] == 0 and again["incremental"]["files_reused"] == 2
    assert {k: v for k, v in again.items() if k not in ("seconds", "incremental", "events_read_this_run")} == {
        k: v for k, v in last.items() if k not in ("seconds", "incremental", "events_read_this_run")}
    cli = run_cli("run", "-c", str(cfg), "-w", str(ws), "--format", "json", "--if-new")  # as a scheduler calls it
    assert json.loads(cli.stdout)["incremental"]["mode"] == "unchanged"
    validate("run", json.loads(cli.stdout))
    assert digest() == before
    assert pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)["incremental"]["mode"] == "incremental"
    monkeypatch.setenv(FULL_ENV, "1")
    assert pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True, if_new=True)["incremental"]["mode"] == "full"
    monkeypatch.setenv(FULL_ENV, "0")
    cfg.write_text(cfg.read_text() + "snapshots: {top_paths: 3}\n")  # results change: the run must run
    changed = pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True, if_new=True)
    assert changed["incremental"]["mode"] == "incremental"
    changed_hash = load_config(cfg).config_hash
    _grow(tmp_path, tmp_path / "full", cfg, _small_parts()[:2], monkeypatch, full=True)
    a, b = _outputs(ws), _outputs(tmp_path / "full")
    for name in ("feed", "events", "journeys", "journey_steps"):  # snapshots: both keep every run's, insert-only
        assert a[name] == b[name], name
    con = Workspace.open(ws, read_only=True, create=False).con
    try:
        latest = f'"config_hash":"{changed_hash}"', f'"input_hash":"{pipeline.input_hash(con)}"'
    finally:
        con.close()
    last_run = {row for row in b["snapshots"] if all(key in row[1] for key in latest)}
    assert last_run and last_run <= set(a["snapshots"])


def test_sealed_days_keep_their_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Days that end before the first run's watermark (2026-01-04 09:00) minus the 1 h tolerance are never rewritten."""
    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    ws = tmp_path / "inc"

    def days() -> dict[str, str]:
        con = Workspace.open(ws, read_only=True, create=False).con
        try:
            return dict(con.execute("SELECT part, path FROM parquet_files WHERE layer = 'events'").fetchall())
        finally:
            con.close()

    parts = _small_parts()
    first = _grow(tmp_path, ws, cfg, parts[:1], monkeypatch, full=False)
    before = days()
    (tmp_path / "data" / "part1.jsonl").write_text("\n".join(parts[1]) + "\n")
    (tmp_path / "data" / "part2.jsonl").write_text("\n".join(parts[2]) + "\n")
    after = pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)
    grown = days()
    sealed = ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert first[0]["incremental"]["partitions_written"] == 4 and after["incremental"]["mode"] == "incremental"
    assert [grown[d] for d in sealed] == [before[d] for d in sealed]
    assert grown["2026-01-04"] != before["2026-01-04"] and "2026-01-05" in grown  # the open day and a new one
    assert after["late_rejected"] == 1 and all((ws / grown[d]).is_file() for d in grown)


def test_merging_stored_actors_or_changing_a_file_recomputes_everything(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    parts = _small_parts()[:2] + [[json.dumps({"event_id": "m1", "user_id": "u1", "anonymous_id": "u2",
                                               "event_name": "identify", "timestamp": "2026-01-05T12:00:00Z"})]]
    inc = _grow(tmp_path, tmp_path / "inc", cfg, parts, monkeypatch, full=False)
    assert inc[2]["incremental"]["mode"] == "full" and "alias links" in inc[2]["incremental"]["reason"]
    full = _grow(tmp_path, tmp_path / "full", cfg, parts, monkeypatch, full=True)
    assert _outputs(tmp_path / "inc") == _outputs(tmp_path / "full")
    (tmp_path / "data" / "part0.jsonl").write_text("\n".join(parts[0][:-1]) + "\n")
    monkeypatch.setenv(FULL_ENV, "0")
    again = pipeline.run(config_path=str(cfg), workspace=str(tmp_path / "inc"), quiet=True)
    assert again["incremental"]["mode"] == "full" and "changed" in again["incremental"]["reason"]
    assert full[2]["accepted"] == inc[2]["accepted"]


def test_files_are_immutable_collected_next_run_and_found_after_a_move(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    ws = tmp_path / "inc"
    _grow(tmp_path, ws, cfg, _small_parts()[:2], monkeypatch, full=False)
    con = Workspace.open(ws, read_only=True, create=False).con
    named = {r[0] for r in con.execute("SELECT path FROM parquet_files").fetchall()}
    con.close()
    on_disk = {p.relative_to(ws).as_posix() for p in ws.rglob("*.parquet")}
    assert named <= on_disk and len(on_disk - named) >= 1  # the first run's steps file waits for the next run
    stray = ws / "silver" / "tenant=_" / "day=2026-01-01" / ("0" * 64 + ".parquet")
    stray.write_bytes(b"not referenced")
    pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)
    assert not stray.exists()
    pipeline.run(config_path=str(cfg), workspace=str(ws), quiet=True)  # the open steps a compaction replaced go too
    con = Workspace.open(ws, read_only=True, create=False).con
    named = {r[0] for r in con.execute("SELECT path FROM parquet_files").fetchall()}
    n = con.execute("SELECT count(*) FROM events").fetchall()[0][0]
    con.close()
    assert named == {p.relative_to(ws).as_posix() for p in ws.rglob("*.parquet")}
    moved = tmp_path / "moved"
    shutil.move(str(ws), moved)
    con = Workspace.open(moved, read_only=True, create=False).con
    assert con.execute("SELECT count(*) FROM events").fetchall()[0][0] == n > 0
    assert con.execute("SELECT count(*) FROM journey_steps").fetchall()[0][0] > 0
    con.close()


def test_an_event_leads_back_to_its_file_line_and_content_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.incremental import origins
    from engine.silver import file_sha256

    cfg = tmp_path / "small.yaml"
    cfg.write_text(_SMALL.format(src=tmp_path / "data" / "*.jsonl"))
    _grow(tmp_path, tmp_path / "inc", cfg, _small_parts()[:2], monkeypatch, full=False)
    con = Workspace.open(tmp_path / "inc", read_only=True, create=False).con
    found = origins(con, ["a3", "c7"])
    con.close()
    part0, part1 = tmp_path / "data" / "part0.jsonl", tmp_path / "data" / "part1.jsonl"
    assert [(o["event_id"], Path(o["file"]).name, o["line"]) for o in found] == [("a3", "part0.jsonl", 4), ("c7", "part1.jsonl", 4)]
    assert [o["sha256"] for o in found] == [file_sha256(str(part0)), file_sha256(str(part1))]
    assert json.loads(part0.read_text().splitlines()[3])["event_id"] == "a3"


def test_a_carried_notice_reads_the_open_base_less_superseded_and_the_delta(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """engine.carried keeps the steps of a run that left a delta as that run's `journey_steps` saw them."""
    from engine import carried

    parts, cfg = _demo_parts(), _config(tmp_path, ROOT / "fixtures" / "demo.yaml")
    ws = tmp_path / "inc"
    _grow(tmp_path, ws, cfg, parts[:2], monkeypatch, full=False)
    con = Workspace.open(ws, read_only=True, create=False).con
    expected = con.execute("SELECT * FROM journey_steps ORDER BY ALL").fetchall()
    assert con.execute(f"SELECT count(*) FROM {silver.SUPERSEDED}").fetchall()[0][0] > 0  # a delta run
    con.close()
    published = tmp_path / "published.duckdb"
    shutil.copy(ws / "journeygraph.duckdb", published)
    with Workspace.build(ws) as building:
        carried.keep(building.con, published, ["insight-x"])
        with carried.reader(building.con, "insight-x") as held:
            assert held is not None
            got = held.con.execute("SELECT * FROM journey_steps ORDER BY ALL").fetchall()
    assert got == expected and len(got) > 0
