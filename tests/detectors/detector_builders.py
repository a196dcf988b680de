"""Builders for detector tests: configs, and Snapshots from exact or simulated chain payloads."""

from __future__ import annotations

from typing import Any

from detectors.synthetic import chain_payload, simulated_payload
from engine.config import Config, PrivacyConfig, Release
from engine.snapshot import Snapshot


def make_cfg(detectors: dict[str, Any] | None = None, releases: tuple[Release, ...] = (), min_group: int = 20) -> Config:
    from engine.config import _freeze

    return Config(source=None, journeys=(), releases=releases, detectors=_freeze(detectors or {}),
                  privacy=PrivacyConfig(min_group_size=min_group))


def snap(probs: dict, *, journeys: int, start: str = "sign_up", seed: int | None = None, **meta: Any) -> Snapshot:
    if seed is None:
        return Snapshot.from_payload(chain_payload(probs, journeys=journeys, start=start, **meta))
    return Snapshot.from_payload(simulated_payload(probs, journeys=journeys, seed=seed, start=start, **meta))


def snapshots_of(events: Any, cfg: Any, ws_dir: Any) -> list[Any]:
    """The engine's snapshots of an events file under a config (ingest → normalise → states → journeys → snapshots)."""
    from engine import ingest, journeys, normalize, states
    from engine.app.pipeline import _build_snapshots
    from engine.workspace import Workspace

    ws = Workspace.open(ws_dir)
    try:
        ingest.load(ws.con, str(events), cfg, "test")
        normalize.normalize(ws.con, cfg)
        states.derive(ws.con, cfg)
        journeys.build(ws.con, cfg)
        return _build_snapshots(ws.con, cfg)
    finally:
        ws.close()
