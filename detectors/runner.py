"""Run every registered detector over a set of snapshots: a pure, deterministic function.

BH families. Two Benjamini-Hochberg families per (tenant, journey) per run,
named by each detector's `family` attribute:

- "structure": every test of the single-snapshot detectors (activation_driver,
  dropoff, repeated_visit, path_quality) on any mature snapshot of the journey;
- "comparison": every test of the detectors that compare snapshots with each
  other (regression: period pairs and release pairs, traffic tests included;
  segment_divergence: each segment value against the rest).

Each family holds the tests that became findings *and* the ones logged with
`ctx.record` because a threshold other than significance ruled them out. The
split is deliberate: structural tests are mostly true effects (a funnel always
has drivers and drop-offs), and mixed into one family their many rejections
would loosen BH's threshold for the comparisons, where the honest default is
"nothing changed". Kept apart, a journey with no real change gets *any*
regression or divergence with probability at most `detectors.fdr_q`.
Findings with q > fdr_q, or resting on a group smaller than
`privacy.min_group_size`, are dropped.

Ids. A finding's id hashes everything in it, `detector@version` included, so a
version bump yields new ids and the old findings (stored elsewhere) stay as
they were. Nothing here reads a clock, a file or an unseeded random source.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from detectors.confidence import ConfidenceModel, label
from detectors.context import Context, SharedCache
from detectors.defaults import FDR_Q
from detectors.margins import margins
from detectors.registry import CONFIDENCE_KEYS, Detector, Registry, default_registry, settings_for, validate_settings
from detectors.stake import at_stake, second_order
from detectors.stats import benjamini_hochberg, r6, z_from_p
from detectors.view import SnapView
from ontology.errors import ConfigError
from ontology.model import Fact, Finding

SCOPE_ORDER = {"all": 0, "period": 1, "segment": 2, "release_before": 3, "release_after": 4}
SIDE_COUNTS = ("n_segment", "n_rest", "n_before", "n_after", "n_reached", "count")
CHAIN_KEYS = ("removal_effect", "removal_effect_relative", "absorption", "extra_expected_steps")  # first-order chain numbers


@dataclass(frozen=True)
class Views:
    by_id: Mapping[str, SnapView]   # the family's mature snapshots by id
    all_view: SnapView | None       # its all-data snapshot
    stake_cache: dict[str, Any] = field(default_factory=dict)  # detectors/stake.py's redraws per snapshot


@dataclass(frozen=True)
class DetectorRun:
    findings: tuple[Finding, ...]
    facts: tuple[Fact, ...]
    tests: Mapping[str, int] = field(default_factory=dict)  # journey key → tests in its BH family


def run_detectors(snapshots: Sequence[Any], cfg: Any, registry: Registry | None = None) -> DetectorRun:
    """All detectors over all snapshots; findings and facts sorted, ids content-addressed."""
    from detectors.facts import build_facts

    reg = registry or default_registry()
    settings = dict(cfg.detectors)
    validate_settings(settings, reg)
    fdr_q = _fdr_q(settings)
    model = _confidence_model(settings)
    findings: list[Finding] = []
    tests: dict[str, int] = {}
    q_by_label: dict[str, float] = {}
    cache: dict[str, SharedCache] = {}
    for key, views in _families(snapshots):
        for family in sorted({getattr(cls, "family", "structure") for cls in reg}):
            members = [cls for cls in reg if getattr(cls, "family", "structure") == family]
            found, labels, m = _run_family(views, cfg, members, fdr_q, model, cache.setdefault(key, SharedCache()))
            findings.extend(found)
            q_by_label.update(labels)
            tests[f"{key}:{family}"] = m
    findings.sort(key=sort_key)
    facts = build_facts(findings, [SnapView(s) for s in snapshots], cfg, q_by_label, model)
    return DetectorRun(tuple(findings), tuple(facts), tests)


def sort_key(f: Finding) -> tuple:
    return (f.journey, f.type, f.subject, f.predicate, f.object, f.segment or "", f.release or "",
            f.window[0], f.snapshot_id, f.finding_id)


def _families(snapshots: Iterable[Any]) -> list[tuple[str, list[SnapView]]]:
    groups: dict[tuple[str, str], list[SnapView]] = {}
    for snap in snapshots:
        view = SnapView(snap)
        if view.mature or view.scope in ("release_before", "release_after") or _early_period(view):
            groups.setdefault((str(view.payload.get("tenant_id") or ""), view.journey), []).append(view)
    out = []
    for (tenant, journey), views in sorted(groups.items()):
        views.sort(key=lambda v: (SCOPE_ORDER.get(v.scope, 9), v.window[0], v.segment or ("", ""),
                                  v.release or "", v.snapshot_id))
        out.append((f"{tenant}/{journey}" if tenant else journey, views))
    return out


def _early_period(view: SnapView) -> bool:
    """An immature period with in-progress estimates: period-on-period comparisons decide it early (regression)."""
    return view.scope == "period" and "resolved_transitions" in view.payload


def _run_family(views: list[SnapView], cfg: Any, reg: Sequence[type[Detector]], fdr_q: float,
                model: ConfidenceModel, cache: SharedCache) -> tuple[list[Finding], dict[str, float], int]:
    raw: list[tuple[Finding, int, Any]] = []
    extra: list[tuple[str, float]] = []
    min_group = int(cfg.privacy.min_group_size)
    for cls in reg:
        config = settings_for(cls, cfg.detector_settings(cls.name))
        ctx = Context(journey=views[0].journey, views=views, config=config, detector=f"{cls.name}@{cls.version}",
                      releases=tuple(cfg.releases), min_group_size=min_group, cache=cache)
        n_min = ctx.floor(getattr(config, "min_n", getattr(config, "min_count", min_group)))
        raw.extend((f, n_min, config) for f in cls().run(ctx))
        extra.extend(ctx.extra_tests)
    p_all = [f.p_value for f, _, _ in raw] + [p for _, p in extra]
    q_all = benjamini_hochberg(p_all)
    labels = {lab: float(q) for (lab, _), q in zip(extra, q_all[len(raw):])}
    kept = []
    views_at = Views({v.snapshot_id: v for v in views}, next((v for v in views if v.scope == "all"), None))
    z_cut = z_from_p(max((p for p, q in zip(p_all, q_all) if q <= fdr_q), default=0.0))
    for (f, n_min, config), q in zip(raw, q_all[: len(raw)]):
        labels[_label_of(f)] = float(q)
        if q <= fdr_q and _big_enough(f, min_group):
            conf = (model.score(z_from_p(f.p_value), f.n, n_min, f.effect) if model.logistic
                    else model.replication(z_from_p(f.p_value), z_cut, margins(f, config, n_min)))
            kept.append(_finalise(f, float(q), conf, views_at))
    return kept, labels, len(p_all)


def _label_of(f: Finding) -> str:
    """Label under which facts.py finds a finding's q (reach tests behind activation findings)."""
    if f.type in ("activation_driver", "necessary_for_conversion"):
        return f"reach:{f.snapshot_id}:{f.subject.split(':', 1)[1]}"
    return f"finding:{f.snapshot_id}:{f.type}:{f.subject}:{f.object}"


def _big_enough(f: Finding, min_group: int) -> bool:
    if f.n < min_group:
        return False
    return all(int(f.evidence[k]) >= min_group for k in SIDE_COUNTS if isinstance(f.evidence.get(k), int))


def _finalise(f: Finding, q: float, conf: float, views: Views) -> Finding:
    """q, confidence, the snapshot scope, the conversions at stake and the first-order caveat."""
    evidence = dict(f.evidence)
    evidence["q_value"] = r6(q)
    view = views.by_id[f.snapshot_id]
    evidence["scope"] = view.scope
    stake = at_stake(f, view, views.all_view, views.stake_cache)
    if stake is not None:
        evidence["at_stake"] = stake
    if any(k in evidence for k in CHAIN_KEYS) or (stake or {}).get("method") == "chain":
        evidence["first_order_approximation"] = second_order(view)
    return dataclasses.replace(f, q_value=q, confidence=conf, confidence_label=label(conf),
                               evidence=evidence, finding_id="")


def _fdr_q(settings: Mapping[str, Any]) -> float:
    q = settings.get("fdr_q", FDR_Q)
    if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 < float(q) < 1:
        raise ConfigError(f"config key detectors.fdr_q: expected a number in (0, 1), got {q!r}")
    return float(q)


def _confidence_model(settings: Mapping[str, Any]) -> ConfidenceModel:
    raw = dict(settings.get("confidence", ()))
    for key, value in raw.items():
        if key not in CONFIDENCE_KEYS:
            raise ConfigError(f"config key detectors.confidence.{key}: unknown; known: a, b, c")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key detectors.confidence.{key}: expected a number, got {value!r}")
    return ConfidenceModel(**{k: float(v) for k, v in raw.items()}, logistic=bool(raw))
