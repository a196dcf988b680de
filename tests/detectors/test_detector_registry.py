"""The registry refuses what it cannot run; describe() and config overrides."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from detectors.registry import Registry, default_registry, describe, settings_for, validate_settings
from ontology.errors import ConfigError


@dataclass(frozen=True)
class _Cfg:
    min_n: int = 10


def _cls(name="probe", version=1, doc="Finds probes.", config=_Cfg, requires=()):
    attrs = {"name": name, "version": version, "config": config, "requires": requires, "run": lambda self, ctx: []}
    if doc is not None:
        attrs["__doc__"] = doc
    return type("Probe", (), attrs)


@pytest.mark.parametrize("kwargs,message", [
    ({"version": None}, "version"),
    ({"version": 0}, "version"),
    ({"doc": None}, "docstring"),
    ({"doc": "   "}, "docstring"),
    ({"name": "not a name"}, "name"),
    ({"config": dict}, "config"),
    ({"requires": ("no_such_computation",)}, "unknown shared computation"),
], ids=["no-version", "zero-version", "no-docstring", "blank-docstring", "bad-name", "config-not-dataclass", "bad-requires"])
def test_register_refuses_broken_detectors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Registry().register(_cls(**kwargs))


def test_register_refuses_duplicate_names():
    reg = Registry()
    reg.register(_cls())
    with pytest.raises(ValueError, match="already registered"):
        reg.register(_cls(version=2))


def test_builtins_are_registered_like_extensions():
    reg = default_registry()
    assert reg.names() == ["activation_driver", "dropoff", "path_quality", "regression", "repeated_visit",
                           "segment_divergence"]


def test_describe_lists_thresholds():
    rows = {r["name"]: r for r in describe()}
    assert rows["activation_driver"]["thresholds"]["min_lift"] == 1.5
    assert rows["activation_driver"]["version"] == 2
    assert rows["regression"]["types"] == ["regression"]
    assert rows["dropoff"]["finds"]


@pytest.mark.parametrize("settings,path", [
    ({"activation_driver": {"min_lfit": 2.0}}, "detectors.activation_driver.min_lfit"),
    ({"activation_driver": {"min_n": "many"}}, "detectors.activation_driver.min_n"),
    ({"no_such_detector": {}}, "detectors.no_such_detector"),
], ids=["typo-key", "bad-type", "unknown-detector"])
def test_bad_settings_name_the_key(settings, path):
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        validate_settings(settings, default_registry())


def test_overrides_apply_with_types():
    cls = default_registry().get("activation_driver")
    cfg = settings_for(cls, {"min_lift": 2, "min_n": 50.0, "scopes": ["all"]})
    assert (cfg.min_lift, cfg.min_n, cfg.scopes) == (2.0, 50, ("all",))
    assert isinstance(cfg.min_lift, float) and isinstance(cfg.min_n, int)
