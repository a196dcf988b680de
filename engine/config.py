"""Project config: journeygraph.yaml validated once at the edge into frozen dataclasses.

The core never reads raw dicts: it receives a `Config`. Every error names the
key path and what was expected. Rule expressions (states, outcomes, segments)
are checked by `engine.rules` against the predicate allowlist here too, so a
bad rule fails before any data is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from engine.durations import parse_duration
from ontology.errors import ConfigError
from ontology.store import StoreConfig

DEFAULT_DETECTORS: dict[str, dict[str, Any]] = {}  # filled by detectors' documented defaults at run time


@dataclass(frozen=True)
class BotRules:
    user_agent_patterns: tuple[str, ...] = ("bot", "crawler", "spider", "healthcheck", "uptime", "pingdom")
    max_events_per_minute: int = 120


@dataclass(frozen=True)
class NormalizeConfig:
    dedupe_window_s: int = 24 * 3600
    late_arrival_tolerance_s: int = 48 * 3600
    bots: BotRules = field(default_factory=BotRules)
    alias_events: tuple[str, ...] = ("identify", "login", "alias")
    fields: tuple[tuple[str, str | tuple[str, ...]], ...] = ()  # (journeygraph field, source column or columns)
    timestamp_unit: str = "auto"  # epoch unit of numeric times: auto (from the column's magnitudes), s, ms, us, ns
    timestamp_format: str | None = None  # strptime format tried first, e.g. "%d/%m/%Y %H:%M:%S"


@dataclass(frozen=True)
class StateRule:
    name: str
    when: str


@dataclass(frozen=True)
class Outcome:
    """An absorbing outcome: a predicate over events, or inactivity for a duration."""

    name: str
    when: str | None = None
    inactive_for_s: int | None = None


@dataclass(frozen=True)
class JourneyConfig:
    name: str
    start: str
    outcomes: tuple[Outcome, ...]
    level: str = "raw"
    window_s: int = 30 * 86400
    conversion: str | None = None  # the success outcome; default: first predicate outcome
    collapse_self_loops: bool = False

    @property
    def conversion_outcome(self) -> str:
        if self.conversion:
            return self.conversion
        for outcome in self.outcomes:
            if outcome.when is not None:
                return outcome.name
        return self.outcomes[0].name

    @property
    def dropoff_outcome(self) -> str:
        """Where journeys go that end without a predicate outcome (inactivity or window end)."""
        for outcome in self.outcomes:
            if outcome.inactive_for_s is not None:
                return outcome.name
        return "timed_out"

    @property
    def outcome_names(self) -> tuple[str, ...]:
        names = [o.name for o in self.outcomes]
        if self.dropoff_outcome not in names:
            names.append(self.dropoff_outcome)
        return tuple(names)


@dataclass(frozen=True)
class Segment:
    """A segment dimension: one value per journey, from a column or a named predicate."""

    key: str
    column: str | None = None
    when: str | None = None


@dataclass(frozen=True)
class Release:
    name: str
    at: str  # ISO 8601 UTC with Z


@dataclass(frozen=True)
class SnapshotConfig:
    period_s: int = 7 * 86400
    top_paths: int = 10
    release_window_s: int | None = None  # default: the snapshot period


@dataclass(frozen=True)
class NarratorConfig:
    backend: str = "template"
    model: str | None = None
    base_url: str | None = None
    timeout_s: float = 60.0
    max_attempts: int = 3
    max_tokens: int = 1500


@dataclass(frozen=True)
class PrivacyConfig:
    allowed_properties: tuple[str, ...] = ()
    min_group_size: int = 20


@dataclass(frozen=True)
class Webhook:
    url: str
    format: str = "json"
    digest: str = "none"


DEFAULT_WEIGHTS = (
    ("significance", 0.30),
    ("magnitude", 0.25),
    ("reach", 0.20),
    ("actionability", 0.15),
    ("novelty", 0.10),
)


@dataclass(frozen=True)
class Config:
    source: str | None
    journeys: tuple[JourneyConfig, ...]
    tenant: str | None = None
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    inactivity_gap_s: int = 30 * 60
    states: tuple[StateRule, ...] = ()
    lifecycle: tuple[StateRule, ...] = ()
    segments: tuple[Segment, ...] = ()
    releases: tuple[Release, ...] = ()
    snapshots: SnapshotConfig = field(default_factory=SnapshotConfig)
    detectors: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # name -> sorted (key, value)
    weights: tuple[tuple[str, float], ...] = DEFAULT_WEIGHTS
    narrator: NarratorConfig = field(default_factory=NarratorConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    privacy: PrivacyConfig = field(default_factory=PrivacyConfig)
    webhooks: tuple[Webhook, ...] = ()
    engine: str = "duckdb"  # where the per-event stages run: "duckdb" (embedded) or "spark" (engine.spark)
    inferred: tuple[str, ...] = ()  # human-readable notes on what was inferred (no-config runs)
    base_dir: str = "."  # directory relative paths in the config resolve against

    def journey(self, name: str) -> JourneyConfig:
        for journey in self.journeys:
            if journey.name == name:
                return journey
        raise ConfigError(f"journeys.{name}: no such journey; known: {', '.join(j.name for j in self.journeys)}")

    def detector_settings(self, name: str) -> dict[str, Any]:
        return dict(dict(self.detectors).get(name, ()))

    @property
    def weight_map(self) -> dict[str, float]:
        return dict(self.weights)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("inferred")
        data.pop("base_dir")
        return data

    @property
    def config_hash(self) -> str:
        """Content hash of everything that changes results (not paths, not secrets)."""
        data = self.to_dict()
        data.pop("source")
        data.pop("engine")  # both engines give the same results, so the same hash and ids
        data["store"] = {"backend": self.store.backend}
        data["narrator"] = {k: v for k, v in asdict(self.narrator).items() if k != "base_url"}
        blob = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def resolve_source(self, source: str | None = None) -> str:
        """The event source: `source` (the command line's EVENTS) as given, a relative path meaning the working
        directory's, as for any command-line path; else the config's `source:`, relative to the config's folder."""
        if source:
            return source
        src = self.source
        if not src:
            raise ConfigError("source: no event source given; pass EVENTS or set `source:` in journeygraph.yaml")
        if _looks_like_sql(src) or "://" in src or Path(src).is_absolute():
            return src
        return str(Path(self.base_dir) / src)


def _looks_like_sql(text: str) -> bool:
    return text.lstrip().lower().startswith(("select ", "with ", "from "))


def config_schema() -> dict[str, Any]:
    return json.loads(resources.files("ontology").joinpath("schemas/config.schema.json").read_text())


def _validate_schema(raw: Mapping[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(config_schema())
    errors = sorted(validator.iter_errors(raw), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        err = errors[0]
        path = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        raise ConfigError(f"config key {path}: {err.message}")


def _duration(raw: Any, path: str, default: int) -> int:
    if raw is None:
        return default
    try:
        return parse_duration(raw)
    except ValueError as exc:
        raise ConfigError(f"config key {path}: {exc}") from exc


def _journey(name: str, raw: Mapping[str, Any]) -> JourneyConfig:
    outcomes = []
    for oname, spec in raw["outcomes"].items():
        if isinstance(spec, str):
            outcomes.append(Outcome(name=oname, when=spec))
        else:
            outcomes.append(Outcome(name=oname, inactive_for_s=_duration(spec["inactive_for"], f"journeys.{name}.outcomes.{oname}.inactive_for", 0)))
    journey = JourneyConfig(
        name=name,
        start=raw["start"],
        outcomes=tuple(outcomes),
        level=raw.get("level", "raw"),
        window_s=_duration(raw.get("window"), f"journeys.{name}.window", 30 * 86400),
        conversion=raw.get("conversion"),
        collapse_self_loops=bool(raw.get("collapse_self_loops", False)),
    )
    if journey.conversion and journey.conversion not in [o.name for o in outcomes]:
        raise ConfigError(f"config key journeys.{name}.conversion: {journey.conversion!r} is not one of its outcomes")
    if sum(1 for o in outcomes if o.inactive_for_s is not None) > 1:
        raise ConfigError(f"config key journeys.{name}.outcomes: at most one inactive_for outcome")
    return journey


def _freeze(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def from_dict(raw: Mapping[str, Any] | None, base_dir: str = ".") -> Config:
    """Validate a parsed YAML mapping and build the frozen Config."""
    raw = dict(raw or {})
    _validate_schema(raw)
    norm = raw.get("normalize", {})
    bots = norm.get("bots", {})
    defaults = NormalizeConfig()
    normalize = NormalizeConfig(
        dedupe_window_s=_duration(norm.get("dedupe_window"), "normalize.dedupe_window", defaults.dedupe_window_s),
        late_arrival_tolerance_s=_duration(norm.get("late_arrival_tolerance"), "normalize.late_arrival_tolerance", defaults.late_arrival_tolerance_s),
        bots=BotRules(
            user_agent_patterns=tuple(bots.get("user_agent_patterns", BotRules().user_agent_patterns)),
            max_events_per_minute=int(bots.get("max_events_per_minute", BotRules().max_events_per_minute)),
        ),
        alias_events=tuple(norm.get("identity", {}).get("alias_events", defaults.alias_events)),
        fields=tuple(sorted((k, v if isinstance(v, str) else tuple(v)) for k, v in norm.get("fields", {}).items())),
        timestamp_unit=norm.get("timestamp_unit", "auto"),
        timestamp_format=norm.get("timestamp_format"),
    )
    snaps = raw.get("snapshots", {})
    period = _duration(snaps.get("period"), "snapshots.period", 7 * 86400)
    cfg = Config(
        source=raw.get("source"),
        tenant=raw.get("tenant"),
        journeys=tuple(_journey(name, spec) for name, spec in raw.get("journeys", {}).items()),
        normalize=normalize,
        inactivity_gap_s=_duration(raw.get("sessions", {}).get("inactivity_gap"), "sessions.inactivity_gap", 30 * 60),
        states=tuple(StateRule(**s) for s in raw.get("states", [])),
        lifecycle=tuple(StateRule(**s) for s in raw.get("lifecycle", [])),
        segments=tuple(Segment(key=k, column=v.get("column"), when=v.get("when")) for k, v in sorted(raw.get("segments", {}).items())),
        releases=tuple(sorted((Release(name=r["name"], at=_utc(r["at"], f"releases.{r['name']}.at")) for r in raw.get("releases", [])),
                              key=lambda r: (r.at, r.name))),
        snapshots=SnapshotConfig(
            period_s=period,
            top_paths=int(snaps.get("top_paths", 10)),
            release_window_s=_duration(snaps.get("release_window"), "snapshots.release_window", period),
        ),
        detectors=_freeze(raw.get("detectors", {})),
        weights=tuple((k, float(raw.get("scoring", {}).get("weights", {}).get(k, v))) for k, v in DEFAULT_WEIGHTS),
        narrator=NarratorConfig(**raw.get("narrator", {})),
        store=StoreConfig(**raw.get("store", {})),
        privacy=PrivacyConfig(
            allowed_properties=tuple(raw.get("privacy", {}).get("allowed_properties", ())),
            min_group_size=int(raw.get("privacy", {}).get("min_group_size", 20)),
        ),
        webhooks=tuple(Webhook(**w) for w in raw.get("webhooks", [])),
        engine=raw.get("engine", "duckdb"),
        base_dir=base_dir,
    )
    _check_rules(cfg)
    return cfg


def _utc(text: str, path: str) -> str:
    from datetime import datetime

    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(f"config key {path}: {text!r} is not an ISO 8601 timestamp") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_rules(cfg: Config) -> None:
    """Every rule expression must pass the predicate allowlist (engine.rules)."""
    from engine import rules

    for kind, items in (("states", cfg.states), ("lifecycle", cfg.lifecycle)):
        for i, rule in enumerate(items):
            rules.check_predicate(rule.when, where=f"{kind}[{i}] ({rule.name}).when")
    for journey in cfg.journeys:
        for outcome in journey.outcomes:
            if outcome.when is not None:
                rules.check_predicate(outcome.when, where=f"journeys.{journey.name}.outcomes.{outcome.name}")
    for segment in cfg.segments:
        if segment.when is not None:
            rules.check_predicate(segment.when, where=f"segments.{segment.key}.when")
        if segment.column is not None:
            rules.check_column(segment.column, where=f"segments.{segment.key}.column")


def from_saved(saved: Mapping[str, Any], base_dir: str = ".") -> Config:
    """The config a run saved beside its workspace (config.json), journeys it inferred included.

    The shell saves {"raw": <journeygraph.yaml as parsed>, "base_dir": ..., "inferred_journeys": ...};
    this is the one reader of that file, so every command sees the journeys the run used."""
    raw = saved.get("raw", saved)
    cfg = from_dict(raw, base_dir=str(saved.get("base_dir", base_dir)))
    inferred = saved.get("inferred_journeys")
    if inferred:
        journeys = tuple(JourneyConfig(**{**j, "outcomes": tuple(Outcome(**o) for o in j["outcomes"])})
                         for j in inferred)
        cfg = replace(cfg, journeys=journeys)
    return cfg


def load_config(path: str | Path) -> Config:
    """Read and validate a journeygraph.yaml."""
    return read_config(path)[0]


def read_config(path: str | Path) -> tuple[Config, dict[str, Any]]:
    """Read and validate a journeygraph.yaml once: the config and the mapping it was parsed from."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}; create one with `journeygraph init`") from exc
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys (source, journeys, …)")
    return from_dict(raw, base_dir=str(path.parent.resolve())), raw


def _duration_text(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _thaw(value: Any) -> Any:
    return [_thaw(v) for v in value] if isinstance(value, tuple) else value


def _journey_raw(journey: JourneyConfig) -> dict[str, Any]:
    outcomes = {o.name: (o.when if o.when is not None else {"inactive_for": _duration_text(o.inactive_for_s or 0)})
                for o in journey.outcomes}
    raw: dict[str, Any] = {"level": journey.level, "start": journey.start, "outcomes": outcomes,
                           "window": _duration_text(journey.window_s)}
    if journey.conversion:
        raw["conversion"] = journey.conversion
    if journey.collapse_self_loops:
        raw["collapse_self_loops"] = True
    return raw


def _normalize_raw(norm: NormalizeConfig) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "dedupe_window": _duration_text(norm.dedupe_window_s),
        "late_arrival_tolerance": _duration_text(norm.late_arrival_tolerance_s),
        "bots": {"user_agent_patterns": list(norm.bots.user_agent_patterns), "max_events_per_minute": norm.bots.max_events_per_minute},
        "identity": {"alias_events": list(norm.alias_events)},
        "timestamp_unit": norm.timestamp_unit,
    }
    if norm.fields:
        raw["fields"] = {k: (v if isinstance(v, str) else list(v)) for k, v in norm.fields}
    if norm.timestamp_format:
        raw["timestamp_format"] = norm.timestamp_format
    return raw


def to_raw(cfg: Config) -> dict[str, Any]:
    """The journeygraph.yaml mapping of a Config: `from_dict(to_raw(cfg))` gives the same config (and hash).

    What a no-config run writes into its workspace, so every later command reads the config it inferred.
    Secrets (the store's password) are left out; they come from the environment.
    """
    raw: dict[str, Any] = {
        "normalize": _normalize_raw(cfg.normalize),
        "sessions": {"inactivity_gap": _duration_text(cfg.inactivity_gap_s)},
        "states": [asdict(s) for s in cfg.states],
        "lifecycle": [asdict(s) for s in cfg.lifecycle],
        "journeys": {j.name: _journey_raw(j) for j in cfg.journeys},
        "segments": {s.key: {k: v for k, v in (("column", s.column), ("when", s.when)) if v is not None} for s in cfg.segments},
        "releases": [asdict(r) for r in cfg.releases],
        "snapshots": {"period": _duration_text(cfg.snapshots.period_s), "top_paths": cfg.snapshots.top_paths,
                      "release_window": _duration_text(cfg.snapshots.release_window_s or cfg.snapshots.period_s)},
        "detectors": {name: {k: _thaw(v) for k, v in settings} for name, settings in cfg.detectors},
        "scoring": {"weights": dict(cfg.weights)},
        "narrator": {k: v for k, v in asdict(cfg.narrator).items() if v is not None},
        "store": {k: v for k, v in asdict(cfg.store).items() if v is not None and k != "password"},
        "privacy": {"allowed_properties": list(cfg.privacy.allowed_properties), "min_group_size": cfg.privacy.min_group_size},
        "webhooks": [asdict(w) for w in cfg.webhooks],
    }
    if cfg.source:
        raw["source"] = cfg.source
    if cfg.tenant:
        raw["tenant"] = cfg.tenant
    if cfg.engine != "duckdb":
        raw["engine"] = cfg.engine
    return raw
