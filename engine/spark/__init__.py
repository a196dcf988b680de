"""Apache Spark as the engine of the per-event stages (`run --engine spark`, `engine: spark`).

Imported only when chosen: the DuckDB default never imports pyspark and needs no Java. Spark runs
normalisation, states and the per-actor journey cut; the workspace then holds exactly what the DuckDB
path leaves: the silver events and gold journey steps written by engine.silver (so the `events` and
`journey_steps` views read the same files), rejected_events, the identity links and map, the rate bots,
journey_cuts, journeys and journey_progress. Snapshots, the Markov solve, detectors and narration run
unchanged. A Spark run is always a full recompute (`incremental` False: the pipeline says so in the
summary's incremental.reason). Spark's scratch under the workspace, rewritten by every run and removed
once the journeys are built:

    spark/bronze.parquet         the usable staged rows (DuckDB ingest and quarantine, unchanged)
    spark/known.parquet          event keys a previous run accepted (late-arrival rule)
    spark/events/                the normalised events with states (loaded by `load_events`)
    spark/rejected/              duplicates, bots and late arrivals (keys, time and flags)
    spark/bursts/                the rate bots (tenant, actor)
    spark/journeys/<n>/          per journey definition: one row per journey and per step
"""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from engine import pandas_off
from engine.config import Config
from ontology.errors import ConfigError

pandas_off.switch_on()  # PySpark uses pandas: the executable switched it off for DuckDB runs (engine.pandas_off)


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def bronze(self) -> Path:
        return self.root / "bronze.parquet"

    @property
    def known(self) -> Path:
        return self.root / "known.parquet"

    @property
    def events(self) -> Path:
        return self.root / "events"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    @property
    def bursts(self) -> Path:
        return self.root / "bursts"

    def journey(self, index: int) -> Path:
        return self.root / "journeys" / str(index)


def parquet_glob(folder: Path) -> str:
    """A DuckDB string literal for the Parquet files Spark wrote into `folder`."""
    return "'" + str(folder / "*.parquet").replace("'", "''") + "'"


class SparkStages:
    """normalize / derive / build with the signatures of engine.normalize, engine.states and engine.journeys."""

    incremental = False  # every Spark run recomputes everything

    def __init__(self, root: Path) -> None:
        missing = [what for what, found in (("pyspark (pip install 'journeygraph[spark]')", importlib.util.find_spec("pyspark")),
                                            ("a Java 17 runtime (java on PATH)", shutil.which("java"))) if not found]
        if missing:
            raise ConfigError("engine: spark needs " + " and ".join(missing) + "; or run with --engine duckdb")
        self.layout = Layout(root)

    def normalize(self, con: Any, cfg: Config, watermark: datetime | None = None) -> Any:
        from engine.spark import normalise

        return normalise.normalize(con, cfg, self.layout, watermark)

    def derive(self, con: Any, cfg: Config) -> None:
        """Nothing left to do: normalize derived the states on Spark (they depend on the config's rules alone)."""

    def build(self, con: Any, cfg: Config) -> Any:
        from engine import journeys
        from engine.spark import journey_cut

        indexes = {j.name: i for i, j in enumerate(cfg.journeys)}
        stats = journeys.build(con, cfg, partial(journey_cut.build_one, layout=self.layout, indexes=indexes))
        shutil.rmtree(self.layout.root, ignore_errors=True)  # scratch: the workspace's layers now hold the results
        return stats
