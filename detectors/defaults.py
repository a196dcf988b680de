"""Documented default thresholds of every built-in detector.

Chosen for real product data: a state must touch at least 5 % of journeys and
a comparison needs at least 50 journeys on each side before a detector even
tests it (a floor raised to `privacy.min_group_size` when that is larger).
Effect-size floors keep "significant but trivial" differences on big data out
of the feed; the Benjamini-Hochberg q threshold (`detectors.fdr_q`, 0.05)
keeps chance out of it. Override any value in journeygraph.yaml under
`detectors.<name>.<key>`; unknown keys are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

FDR_Q = 0.05                        # detectors.fdr_q: BH level per snapshot family
DEFAULT_SCOPES = ("all", "period")  # snapshot scopes single-snapshot detectors run on


@dataclass(frozen=True)
class ActivationDriverConfig:
    """activation_driver and necessary_for_conversion."""

    min_reach: float = 0.05   # τ_reach: share of completed journeys visiting the state
    min_lift: float = 1.5     # τ_lift: P(conv | reached) / P(conv | not reached)
    min_n: int = 100          # τ_n: journeys reaching the state
    top_k: int = 10           # candidates kept after ranking by removal effect
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass(frozen=True)
class DropoffConfig:
    """dropoff_point and dropoff_cluster."""

    min_exit: float = 0.4     # τ_exit: P(state → drop-off outcome) in one step
    min_reach: float = 0.05   # τ_reach
    min_n: int = 50           # transitions out of the state
    min_excess: float = 0.05  # exit probability must beat the journey's baseline exit rate by this much
    link: float = 0.2         # P(a → b) linking two drop-off states into one cluster
    min_loss_share: float = 0.2  # or: the last state of at least this share of all lost journeys
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass(frozen=True)
class RegressionConfig:
    """regression (regressed_after / changed_after) between mature snapshots."""

    min_n: int = 50             # transitions out of the source state (or journeys) on each side
    min_delta: float = 0.03     # |ΔP| absolute floor
    min_relative: float = 0.10  # |ΔP| / P_before floor
    traffic_alpha: float = 0.05 # raw p below which the edge's entering traffic counts as changed


@dataclass(frozen=True)
class SegmentDivergenceConfig:
    """segment_divergence (diverges_from, more_common_in, less_common_in)."""

    min_n: int = 50                 # transitions out of a state in the segment and in the rest
    min_jsd: float = 0.01           # bits; overall divergence floor for diverges_from
    min_reach_difference: float = 0.05  # absolute reach difference for more/less_common_in


@dataclass(frozen=True)
class RepeatedVisitConfig:
    """repeated_visit (is_revisited_in)."""

    min_visits_mean: float = 2.0  # τ_loop: mean visits among journeys containing the state (hub states
                                  # such as a main feature page sit near 1.5-1.8 on real data)
    min_n: int = 50               # journeys reaching the state
    merge_lifecycle: bool = True  # lifecycle variants of one activity (XES lifecycle:transition) are one visit
    scopes: tuple[str, ...] = DEFAULT_SCOPES


@dataclass(frozen=True)
class PathQualityConfig:
    """fast_path (is_fast_path_to) and slow_path (associated_with, kind slow_path)."""

    min_count: int = 30        # journeys following the path
    min_share: float = 0.02    # share of completed journeys following it
    fast_quality: float = 1.5  # dimensionless Q relative to the snapshot's baseline
    slow_quality: float = 0.5
    slow_min_share: float = 0.05  # "frequent" for slow paths
    scopes: tuple[str, ...] = ("all",)
