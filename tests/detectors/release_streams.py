"""Demo streams cut a few days after a release, through the real engine stages (tests and benchmarks share it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from engine.config import Config, load_config
from fixtures.generate_demo import DemoParams, generate, write_jsonl

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"


def _instant(row: dict[str, Any]) -> np.datetime64:
    ts = str(row["timestamp"])
    if ts.endswith("Z"):
        return np.datetime64(ts[:-1], "s")
    sign = 1 if ts[-6] == "+" else -1
    return np.datetime64(ts[:-6], "s") - sign * np.timedelta64(int(ts[-5:-3]) * 3600 + int(ts[-2:]) * 60, "s")


def write_stream(params: DemoParams, where: Path, days_after: float, *, inactive_for: str = "3d",
                 window: str = "30d", extra_releases: tuple[dict[str, str], ...] = ()) -> Path:
    """Write the demo stream cut `days_after` days after the release, and its config; the config's path."""
    where.mkdir(parents=True, exist_ok=True)
    end = np.datetime64(params.release_at.rstrip("Z"), "s") + np.timedelta64(int(days_after * 86400), "s")
    rows = [r for r in generate(params) if _instant(r) <= end]
    write_jsonl(rows, where / "events.jsonl")
    raw = yaml.safe_load((FIXTURES / "demo.yaml").read_text())
    raw["source"] = str(where / "events.jsonl")
    raw["journeys"]["activation"]["outcomes"]["dropped"] = {"inactive_for": inactive_for}
    raw["journeys"]["activation"]["window"] = window
    raw["releases"] = [{"name": params.release_name, "at": params.release_at}, *extra_releases]
    (where / "config.yaml").write_text(yaml.safe_dump(raw))
    return where / "config.yaml"


def release_stream(params: DemoParams, where: Path, days_after: float, **options: Any) -> tuple[list[Any], Config]:
    """Snapshots of the demo stream with every event later than `days_after` days after the release dropped."""
    from tests.detectors.detector_builders import snapshots_of  # importable from any test directory

    cfg = load_config(write_stream(params, where, days_after, **options))
    return snapshots_of(where / "events.jsonl", cfg, where / "ws"), cfg


def planted_or_null(kind: str, where: Path, days_after: float, **kw: Any) -> tuple[list[Any], Config]:
    """The young release stream of `kw` (DemoParams fields), planted or its null twin (`kind` "null")."""
    params = DemoParams.null(**kw) if kind == "null" else DemoParams(**kw)
    return release_stream(params, where, days_after)


def simulated_chain_snapshots(n: int = 3000, seed: int = 11, late_journeys: int = 400) -> list[Any]:
    """Snapshots of the paper chain's simulated journeys, some still in progress at the data end."""
    import duckdb

    from engine.snapshot import build_snapshots
    from fixtures import paper_chain as pc

    con = duckdb.connect()
    try:
        data_end = pc.load_simulation(con, n, seed, late_journeys=late_journeys)
        cfg = pc.config()
        return build_snapshots(con, cfg, cfg.journeys[0], "sim", "0.1.0", data_end=data_end)
    finally:
        con.close()
