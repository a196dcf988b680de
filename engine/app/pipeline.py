"""The application shell: events → snapshots → findings → facts → ranked, narrated feed.

This is the only place that wires the packages together (STYLE.md): the engine
core produces snapshots, detectors turn them into findings and facts, the
ontology store keeps the facts, scoring ranks, the narrator writes insights.
Each stage replaces its own tables (events, journeys, …), which a rerun
rebuilds from the source, in the run's private copy of the database; the
copy is published with one rename at the end (engine.publish), so readers
see the whole run or the one before it, never a mixture.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import __version__, memory
from engine.config import Config, from_dict, read_config
from engine.publish import failpoint
from engine.workspace import DB_NAME, RUN_WAIT_S, Workspace
from ontology.errors import ConfigError
from ontology.store import FactStore, open_store

if TYPE_CHECKING:
    from narrator.bundle import FactSource

log = logging.getLogger(__name__)

DEMO_WORKSPACE = ".journeygraph-demo"
# What the stages after journeys import (scipy.special alone costs ~0.5 s of start-up)
LATER_STAGE_MODULES = ("scipy.special", "engine.snapshot", "engine.snapshot_store", "detectors.runner", "engine.feed",
                       "ontology.store", "narrator.narrate", "narrator.backends", "ontology.validation")
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _load_cfg(config_path: str | None, source: str | None) -> tuple[Config, dict[str, Any]]:
    if config_path:
        cfg, raw = read_config(config_path)
    elif not source and Path("journeygraph.yaml").is_file():
        return _load_cfg("journeygraph.yaml", None)
    else:
        if not source:
            raise ConfigError("nothing to run: pass EVENTS (a file, glob or SQL) or -c journeygraph.yaml "
                              "(or run where a journeygraph.yaml is)")
        raw = {}
        cfg = from_dict(raw)
    return cfg, raw


def input_hash(con: Any) -> str:
    """Order-independent content hash of the accepted events (so row order never matters)."""
    from engine import silver

    stored = silver.input_hash(con)  # the same hash, kept per Parquet partition: no scan
    if stored is not None:
        return stored
    row = con.execute(
        """SELECT count(*), coalesce(bit_xor(hash(tenant_id, actor_id, event_id, event_name, ts,
                                                   CAST(properties AS VARCHAR))), 0) FROM events"""
    ).fetchone()
    return hashlib.sha256(f"{row[0]}:{row[1]}".encode()).hexdigest()[:16]


def _step(bar: Any, name: str) -> None:
    log.info("stage done: %s", name)
    memory.give_back()  # the stage's freed temporaries, before the next stage's peak
    failpoint(name)  # JOURNEYGRAPH_FAILPOINT=<stage>: the crash tests stop the run here
    bar.set_postfix_str(name)
    bar.update(1)


def run(source: str | None = None, config_path: str | None = None, workspace: str | None = None,
        *, cfg: Config | None = None, quiet: bool = False, engine: str | None = None, if_new: bool = False) -> dict[str, Any]:
    """Run the whole pipeline and return the `run --format json` summary (`quiet`: no progress bar;
    `engine`: overrides the config's; `if_new`: publish nothing when there is nothing new,
    engine.incremental.up_to_date).

    The run writes a private copy of the workspace's database under the run lock and publishes it
    with one rename when every stage has finished (engine.publish); a failed or killed run changes
    nothing readers see."""
    from detectors.registry import default_registry, validate_settings

    started = time.perf_counter()
    raw: dict[str, Any] = {}
    if cfg is None:
        cfg, raw = _load_cfg(config_path, source)
    if engine:
        cfg = dataclasses.replace(cfg, engine=engine)
    if cfg.detectors:  # a typo in detector settings fails now, not after the data stages
        validate_settings(dict(cfg.detectors), default_registry())
    src = cfg.resolve_source(source)
    try:
        with Workspace.build(workspace, wait_s=RUN_WAIT_S) as ws:
            return _run_stages(ws, src, cfg, raw, started, quiet, if_new)
    except _UpToDate as done:  # the build copy is discarded: the published workspace stays as it was, byte for byte
        return {**done.summary, "seconds": round(time.perf_counter() - started, 3)}


class _UpToDate(Exception):  # noqa: N818 - not an error: how a run with nothing to do leaves the build
    """Nothing new since the last run (engine.incremental.up_to_date): its published results stand."""

    def __init__(self, summary: dict[str, Any]) -> None:
        super().__init__("up to date")
        self.summary = summary


def _run_stages(ws: Workspace, src: str, cfg: Config, raw: dict[str, Any], started: float,
                quiet: bool, if_new: bool = False) -> dict[str, Any]:
    """Every stage of a run, written into the run's private copy `ws` (published by the caller)."""
    from engine import incremental, infer, ingest, inspection, state_metrics
    from engine.progress import bar as progress_bar

    con = ws.con
    stages = _event_stages(cfg, ws.path)
    previous = _previous_watermark(con)
    run_id = hashlib.sha256(f"{src}|{cfg.config_hash}|{__version__}".encode()).hexdigest()[:16]
    with progress_bar(total=8, desc="journeygraph run", unit="stage", quiet=quiet) as bar:
        plan = incremental.plan(con, src, cfg, run_id, previous, __version__)  # engine.incremental: read only new files
        if plan.incremental and not stages.incremental:
            plan.fall_back(f"engine: {cfg.engine} runs a full recompute")
        unchanged = incremental.up_to_date(con, plan, cfg) if if_new else None
        if unchanged is not None:
            raise _UpToDate(unchanged)
        preload = _preload(LATER_STAGE_MODULES + _store_modules(cfg))
        loaded = ingest.load(con, src, cfg, run_id)
        _step(bar, "ingest")
        norm = stages.normalize(con, cfg, watermark=previous)
        _step(bar, "normalise")
        counts = norm.to_dict()
        if not norm.accepted and (not cfg.journeys or counts["events_read"] == counts["quarantined"] > 0):
            raise inspection.NothingAccepted(inspection.nothing_accepted(con, run_id, counts, loaded.notes))
        if not cfg.journeys:
            cfg = infer.infer_journey(con, cfg)
        stages.derive(con, cfg)
        _step(bar, "states")
        jstats = stages.build(con, cfg)
        _step(bar, "journeys")
        preload.join()
        snaps = _build_snapshots(con, cfg)
        _step(bar, "snapshots")
        findings, facts = _detect(snaps, cfg)
        _step(bar, "detectors")
        state_metrics.store(con, snaps)  # after the detectors, so their solved chains are reused
        store = open_store(cfg.store.backend, cfg.store, ws.path, allowed_properties=cfg.privacy.allowed_properties)
        try:
            n_facts = _store_facts(store, facts)
            _step(bar, "facts")
            from narrator.bundle import RunFactSource

            insights = _narrate(ws, cfg, RunFactSource(store, (f.fact_id for f in facts)), findings)
            _step(bar, "narrator")
        finally:
            store.close()
    summary = _summary(norm, jstats, snaps, findings, n_facts, insights, cfg, started, loaded.notes,
                       incremental.report(con, norm.events_read))
    _record_run(ws, run_id, summary, raw or _inferred_raw(ws, cfg, src, loaded.notes), cfg)
    return summary


def _event_stages(cfg: Config, ws_path: Path) -> Any:
    """normalize / derive / build of the per-event stages, and whether they run incrementally: DuckDB's,
    or Spark's (engine.spark, imported only when chosen; always a full recompute)."""
    if cfg.engine == "spark":
        from engine.spark import SparkStages

        return SparkStages(ws_path / "spark")
    from types import SimpleNamespace

    from engine import journeys, normalize, states

    return SimpleNamespace(normalize=normalize.normalize, derive=states.derive, build=journeys.build, incremental=True)


def _preload(modules: tuple[str, ...]) -> threading.Thread:
    """Import the later stages' modules on a background thread while DuckDB works on the early ones.

    Why: a run spends about a second importing scipy.special, the detectors, the fact store and the
    narrator. DuckDB releases the GIL while it runs a query, and ingest often leaves a core free (one
    Parquet row group is read by one thread), so those imports overlap the data work instead of adding
    to the wall time. Python's per-module import locks make an import the main thread starts meanwhile
    (normalise's scipy.sparse, with alias links) wait for, never see, a half-imported module; the caller
    joins the thread before the snapshot stage. A failed import here is ignored: the stage that needs
    the module imports it again and reports the error itself.
    """
    def load() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception as exc:  # noqa: BLE001 - reported by the stage that imports it for real
                log.debug("preloading %s failed: %s", name, exc)

    thread = threading.Thread(target=load, name="journeygraph-preload", daemon=True)
    thread.start()
    return thread


def _store_modules(cfg: Config) -> tuple[str, ...]:
    from ontology.store import BACKENDS

    backend = BACKENDS.get(cfg.store.backend)
    return tuple(m for m in (backend.requires, backend.target.partition(":")[0]) if m) if backend else ()


def _previous_watermark(con: Any) -> Any:
    row = con.execute("SELECT max(watermark) FROM runs").fetchone()
    return row[0] if row else None


def _build_snapshots(con: Any, cfg: Config) -> list[Any]:
    from engine import snapshot, snapshot_store

    ihash = input_hash(con)
    snaps: list[Any] = []
    for journey in cfg.journeys:
        snaps.extend(snapshot.build_snapshots(con, cfg, journey, ihash, __version__))
    snapshot_store.write_snapshots(con, snaps)
    return snaps


def _detect(snaps: list[Any], cfg: Config) -> tuple[list[Any], list[Any]]:
    from detectors.runner import run_detectors

    result = run_detectors(snaps, cfg)
    return list(result.findings), list(result.facts)


def _store_facts(store: FactStore, facts: list[Any]) -> int:
    store.write(facts)
    return len({f.fact_id for f in facts})


def _narrate(ws: Workspace, cfg: Config, store: FactSource, findings: list[Any]) -> list[dict[str, Any]]:
    """Rank findings into feed entries, narrate each from this run's facts (`store`), and store findings,
    insights and the feed atomically."""
    from engine import carried, feed, lifecycle
    from narrator.backends import make_backend
    from narrator.narrate import narrate_finding

    previous = _previous_feed(ws)
    entries = feed.rank(findings, cfg, {lifecycle.item_key(i) for i in previous})
    backend = make_backend(cfg.narrator)
    items: list[dict[str, Any]] = []
    insights: list[dict[str, Any]] = []
    for entry in entries:
        insight = narrate_finding(entry.finding, store, backend).to_dict()
        insights.append(insight)
        items.append(feed.feed_item(entry, insight))
    gone = lifecycle.closed_items(previous, {e.key for e in entries})  # closed since the last run: carried once
    carried.keep(ws.con, ws.path / DB_NAME, [item["insight_id"] for item in gone])  # what their traces read
    items += [{**item, "rank": len(items) + i + 1} for i, item in enumerate(gone)]
    _save_outputs(ws, findings, insights, items)
    return insights


def _previous_feed(ws: Workspace) -> list[dict[str, Any]]:
    import json

    return [json.loads(r[0]) for r in ws.con.execute("SELECT item FROM feed ORDER BY rank").fetchall()]


def _save_outputs(ws: Workspace, findings: list[Any], insights: list[dict[str, Any]], items: list[dict[str, Any]]) -> None:
    from ontology.model import canonical_json

    rows = {
        "INSERT OR IGNORE INTO findings VALUES (?, ?, ?, ?, ?)":
            [(f.finding_id, f.snapshot_id, f.detector, f.type, canonical_json(f.to_dict())) for f in findings],
        "INSERT OR IGNORE INTO insights VALUES (?, ?, ?)":
            [(i["insight_id"], i["finding_id"], canonical_json(i)) for i in insights],
        "INSERT INTO feed VALUES (?, ?, ?, ?, ?)":
            [("latest", "", item["rank"], item["insight_id"], canonical_json(item)) for item in items],
    }
    with ws.transaction() as con:
        con.execute("DELETE FROM feed")
        for sql, params in rows.items():
            if params:  # DuckDB's executemany refuses an empty parameter list
                con.executemany(sql, params)


def _summary(norm: Any, jstats: Any, snaps: list[Any], findings: list[Any], n_facts: int,
             insights: list[Any], cfg: Config, started: float, read_notes: tuple[str, ...] = (),
             reads: dict[str, Any] | None = None) -> dict[str, Any]:
    counts = norm.to_dict()
    summary = {
        "events_read": counts["events_read"],
        "accepted": counts["accepted"],
        "quarantined": {"total": counts["quarantined"], "by_reason": dict(sorted(counts["quarantined_by_reason"].items()))},
        "duplicates": counts["duplicates"],
        "bots_filtered": counts["bots_filtered"],
        "late_rejected": counts["late_rejected"],
        "actors": counts["actors"],
        "journeys": jstats.journeys,
        "censored": jstats.censored,
        "snapshots": len(snaps),
        "findings": len(findings),
        "facts": n_facts,
        "insights": len(insights),
        "seconds": round(time.perf_counter() - started, 3),
        "inferred": [f"read {note}" for note in read_notes] + list(cfg.inferred),
        "notes": _notes(snaps),
        **(reads or {}),  # what this run read and reused (engine.incremental)
    }
    from ontology.validation import validate

    validate("run", summary)
    return summary


def _notes(snaps: list[Any]) -> list[str]:
    """What a reader of the feed should know about the model: states folded into an outcome (leakage)."""
    from detectors.leakage import run_summary

    return run_summary(snaps)


def _inferred_raw(ws: Workspace, cfg: Config, source: str, read_notes: tuple[str, ...] = ()) -> dict[str, Any]:
    """The config a no-config run inferred, valid against the schema, also written as journeygraph.yaml in the workspace."""
    from engine.config import to_raw
    from engine.inspection import with_mapping, write_yaml

    single = Path(source).is_file()
    mapped = with_mapping(cfg, [source]) if single and cfg.inferred else cfg
    raw = to_raw(dataclasses.replace(mapped, source=str(Path(source).resolve()) if single else source))
    if cfg.inferred:
        write_yaml(ws.path / "journeygraph.yaml", raw, [f"read {note}" for note in read_notes] + list(cfg.inferred))
    return raw


def _one(row: tuple[Any, ...] | None) -> Any:
    """The single value of a one-row aggregate (None when the query returned no row)."""
    return row[0] if row else None


def _record_run(ws: Workspace, run_id: str, summary: dict[str, Any], raw_cfg: dict[str, Any], cfg: Config) -> None:
    ws.save_config({"raw": raw_cfg, "base_dir": cfg.base_dir, "inferred_journeys": [dataclasses.asdict(j) for j in cfg.journeys] if cfg.inferred else None})
    from ontology.model import canonical_json

    wm = _one(ws.con.execute("SELECT max(ts) FROM events").fetchone())
    ws.con.execute("INSERT INTO runs VALUES (?, ?, ?, ?)", [run_id, "", canonical_json(summary), wm])


def run_demo(workspace: str | None = None, quiet: bool = False) -> dict[str, Any]:
    """Run the bundled SaaS onboarding fixture into a fresh demo workspace."""
    import shutil

    target = Path(workspace or DEMO_WORKSPACE)
    if target.exists():
        shutil.rmtree(target)
    return run(config_path=str(FIXTURES / "demo.yaml"), workspace=str(target), quiet=quiet)
