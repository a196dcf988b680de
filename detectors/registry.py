"""The detector registry: built-ins and extensions register through the same `@register`.

A detector is a class with `name`, `version`, a docstring (what it finds),
`config` (a frozen dataclass of thresholds with documented defaults),
`requires` (names of shared computations in detectors.shared, computed once
per snapshot and cached), `family` (its Benjamini-Hochberg family:
"structure" or "comparison", see detectors.runner) and
`run(ctx) -> list[Finding]`. `register` checks
all of that up front so a broken extension fails at import, not mid-run.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from ontology.errors import ConfigError
from ontology.plugins import PluginRegistry

BUILTIN_MODULES = (
    "detectors.activation_driver",
    "detectors.dropoff",
    "detectors.regression",
    "detectors.segment_divergence",
    "detectors.repeated_visit",
    "detectors.path_quality",
)
RESERVED_KEYS = ("fdr_q", "confidence")  # detectors.<key> settings that are not detector names
CONFIDENCE_KEYS = ("a", "b", "c")
FAMILIES = ("structure", "comparison")  # Benjamini-Hochberg families (see detectors.runner)


class Detector(Protocol):
    """What a registered detector class offers; `requires`, `family` and `types` are optional and read with
    getattr (all of it is checked by `register`, see the module docstring)."""

    name: str
    version: int
    config: type[Any]

    def run(self, ctx: Any) -> list[Any]: ...


class Registry:
    """Name → detector class; refuses what it cannot run."""

    def __init__(self) -> None:
        self._by_name: dict[str, type[Detector]] = {}

    def register(self, cls: Any) -> Any:
        _check_detector(cls)
        if cls.name in self._by_name:
            raise ValueError(f"detector {cls.name!r} is already registered "
                             f"(by {self._by_name[cls.name].__module__}); pick another name or bump `version` instead")
        self._by_name[cls.name] = cls
        return cls

    def get(self, name: str) -> type[Detector]:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"no detector {name!r}; registered: {', '.join(sorted(self._by_name))}") from None

    def __iter__(self) -> Iterator[type[Detector]]:
        return iter(self._by_name[k] for k in sorted(self._by_name))

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def names(self) -> list[str]:
        return sorted(self._by_name)


def _check_detector(cls: type) -> None:
    """Everything the runner relies on, checked once at registration."""
    from detectors.shared import SHARED

    label = getattr(cls, "__qualname__", repr(cls))
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"detector {label}: `name` must be an identifier string")
    version = getattr(cls, "version", None)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"detector {name}: `version` must be a positive int (bump it whenever the logic changes)")
    if not (cls.__doc__ or "").strip():
        raise ValueError(f"detector {name}: a docstring saying what it finds is required")
    config = getattr(cls, "config", None)
    if not (isinstance(config, type) and dataclasses.is_dataclass(config)):
        raise ValueError(f"detector {name}: `config` must be a frozen dataclass of thresholds")
    if not config.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise ValueError(f"detector {name}: `config` dataclass must be frozen")
    for req in getattr(cls, "requires", ()):
        if req not in SHARED:
            raise ValueError(f"detector {name}: requires unknown shared computation {req!r}; known: {', '.join(sorted(SHARED))}")
    if getattr(cls, "family", "structure") not in FAMILIES:
        raise ValueError(f"detector {name}: `family` must be one of {', '.join(FAMILIES)} (its BH family)")
    if not callable(getattr(cls, "run", None)):
        raise ValueError(f"detector {name}: needs a run(ctx) method")


DEFAULT = Registry()
_loaded = False


def register(cls: type) -> type:
    """Class decorator: add a detector to the default registry."""
    return DEFAULT.register(cls)


def default_registry() -> Registry:
    """The default registry: every built-in detector, then those installed as entry points.

    An extension names its detector class in the `journeygraph.detectors` entry-point group
    (ontology.plugins); it may use `@register` itself or leave registering to this function."""
    global _loaded
    if not _loaded:
        for module in BUILTIN_MODULES:
            importlib.import_module(module)
        for plugin in PluginRegistry("detector", ()).plugins().values():
            cls = plugin.load()
            if not (isinstance(cls, type) and DEFAULT._by_name.get(str(getattr(cls, "name", ""))) is cls):
                DEFAULT.register(cls)
        _loaded = True
    return DEFAULT


def settings_for(cls: type[Detector], overrides: Mapping[str, Any]) -> Any:
    """The detector's config with overrides applied; unknown keys and bad types → ConfigError."""
    fields = {f.name: f for f in dataclasses.fields(cls.config)}
    values: dict[str, Any] = {}
    for key, raw in overrides.items():
        if key not in fields:
            raise ConfigError(f"config key detectors.{cls.name}.{key}: unknown setting; "
                              f"known: {', '.join(sorted(fields))}")
        values[key] = _coerce(raw, type(getattr(cls.config(), key)), f"detectors.{cls.name}.{key}")
    return cls.config(**values)


def _coerce(raw: Any, kind: type, path: str) -> Any:
    if kind is tuple:
        if isinstance(raw, str):
            return (raw,)
        if isinstance(raw, (list, tuple)):
            return tuple(str(v) for v in raw)
    elif kind is int and isinstance(raw, (int, float)) and not isinstance(raw, bool) and float(raw).is_integer():
        return int(raw)
    elif kind is float and isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    elif kind is bool and isinstance(raw, bool):
        return raw
    raise ConfigError(f"config key {path}: expected {kind.__name__}, got {raw!r}")


def validate_settings(detector_settings: Mapping[str, Any], registry: Registry) -> None:
    """Top-level keys under `detectors:` must name a registered detector or a reserved key."""
    for key, value in detector_settings.items():
        if key in RESERVED_KEYS:
            continue
        if key not in registry:
            raise ConfigError(f"config key detectors.{key}: no such detector; known: "
                              f"{', '.join(registry.names() + list(RESERVED_KEYS))}")
        settings_for(registry.get(key), dict(value))


def describe(registry: Registry | None = None) -> list[dict[str, Any]]:
    """One row per detector for `journeygraph detectors`: what it finds and its thresholds."""
    reg = registry or default_registry()
    rows = []
    for cls in reg:
        doc = (cls.__doc__ or "").strip().splitlines()
        rows.append({
            "name": cls.name,
            "version": cls.version,
            "finds": doc[0] if doc else "",
            "description": doc[0] if doc else "",
            "types": list(getattr(cls, "types", ())),
            "requires": list(getattr(cls, "requires", ())),
            "family": getattr(cls, "family", "structure"),
            "thresholds": {f.name: _plain(getattr(cls.config(), f.name)) for f in dataclasses.fields(cls.config)},
        })
    return rows


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value

