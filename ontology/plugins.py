"""One registry shape for everything pluggable: detectors, their kinds, fact stores and narrator backends.

Built-ins are listed by name as "module:attribute" and imported only when chosen (the rdflib
plugin pattern), so the offline default never pays for a driver or an SDK. Third parties add
entries without editing this repository, through Python entry points in these groups:

    journeygraph.detectors   a detector class (registered like the built-ins, see detectors.registry)
    journeygraph.stores      a FactStore class with an `open(cfg, workspace, **options)` classmethod
    journeygraph.narrators   an LLMBackend class (see narrator.backends.base)
    journeygraph.kinds       a narrator.kinds.Kind: how a detector's findings are told (named like the detector)

e.g. in the extension's pyproject.toml:

    [project.entry-points."journeygraph.detectors"]
    weekend_gap = "my_pkg.weekend:WeekendGap"
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

GROUPS = {
    "detector": "journeygraph.detectors",
    "store": "journeygraph.stores",
    "narrator": "journeygraph.narrators",
    "kind": "journeygraph.kinds",
}


@dataclass(frozen=True)
class Plugin:
    """Where one named implementation lives and what it needs installed."""

    name: str
    target: str  # "module:attribute"
    requires: str | None = None  # a top-level module it imports, checked before loading
    pip: str | None = None  # the exact install command when `requires` is missing

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        if self.requires:
            try:
                importlib.import_module(self.requires)
            except ImportError as exc:
                raise ImportError(f"{self.name!r} needs the {self.requires!r} package; install it with: {self.pip}") from exc
        loaded = importlib.import_module(module)
        return getattr(loaded, attr) if attr else loaded


class PluginRegistry:
    """Name → Plugin for one kind: the built-ins first, then the installed entry points."""

    def __init__(self, kind: str, builtins: Iterable[Plugin]) -> None:
        if kind not in GROUPS:
            raise ValueError(f"unknown plugin kind {kind!r}; known: {', '.join(GROUPS)}")
        self.kind = kind
        self._builtins = {p.name: p for p in builtins}

    def plugins(self) -> dict[str, Plugin]:
        """Every plugin of this kind; a built-in name cannot be taken over by an entry point."""
        found = dict(self._builtins)
        for ep in entry_points(group=GROUPS[self.kind]):
            found.setdefault(ep.name, Plugin(ep.name, ep.value))
        return found

    def names(self) -> list[str]:
        return sorted(self.plugins())

    def get(self, name: str) -> Plugin | None:
        return self._builtins.get(name) or self.plugins().get(name)
