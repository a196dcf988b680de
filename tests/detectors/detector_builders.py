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
