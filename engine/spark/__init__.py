"""Apache Spark as the engine of the per-event stages (`run --engine spark`, `engine: spark`).

Imported only when chosen: the DuckDB default never imports pyspark and needs no Java. Spark runs
normalisation, states and the per-actor journey cut; the driver's DuckDB file then holds exactly the
tables the DuckDB path leaves (events, rejected_events, journeys, journey_steps, journey_progress),
so snapshots, the Markov solve, detectors and narration run unchanged. Layout under the workspace
(rewritten by every run):

    spark/bronze.parquet         the usable staged rows (DuckDB ingest and quarantine, unchanged)
    spark/known.parquet          event keys a previous run accepted (late-arrival rule)
    spark/silver/events/         the normalised events with states (loaded by `load_events`)
    spark/rejected/              duplicates, bots and late arrivals (keys and flags)
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

from engine.config import Config
from ontology.errors import ConfigError


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
        return self.root / "silver" / "events"

    @property
    def rejected(self) -> Path:
        return self.root / "rejected"

    def journey(self, index: int) -> Path:
        return self.root / "journeys" / str(index)


def parquet_glob(folder: Path) -> str:
    """A DuckDB string literal for the Parquet files Spark wrote into `folder`."""
    return "'" + str(folder / "*.parquet").replace("'", "''") + "'"


class SparkStages:
    """normalize / derive / build with the signatures of engine.normalize, engine.states and engine.journeys."""

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
        return journeys.build(con, cfg, partial(journey_cut.build_one, layout=self.layout, indexes=indexes))
