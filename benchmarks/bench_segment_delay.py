"""Segment divergence from journeys in progress against the completed-only rule: delay and null calibration.

Delay: the demo chain (android users go feature_used -> help_center more often, `--strength`), sign-ups over
60 days, a 30-day window and a 3-day inactivity outcome, cut at every `--step` days from day 32: the first
data end at which each rule reports `segment:platform=android diverges_from` (q <= 0.05). The completed-only
rule is the same detector run on the snapshots with the segment estimates taken out.
Null: the null demo chain cut at `--null-end`, raw p-values of every value's tests over `--null-seeds` seeds
(the share below 0.05 and 0.01 should be near 0.05 and 0.01).

    python benchmarks/bench_segment_delay.py --users 1500 --strength 1.0 --null-seeds 40
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "detectors")]

from detectors import segment_estimates as est  # noqa: E402
from detectors.runner import run_detectors  # noqa: E402
from detectors.segment_divergence import transition_divergence  # noqa: E402
from detectors.stats import chi2_sf  # noqa: E402
from detectors.view import SnapView  # noqa: E402
from fixtures.generate_demo import DemoParams  # noqa: E402
from tests.detectors.release_streams import release_stream  # noqa: E402
from tests.detectors.test_segment_in_progress import _completed_only  # noqa: E402


def _stream(params: DemoParams, end: int, where: Path) -> tuple[list, object]:
    return release_stream(params, where / f"{params.seed}_{end}", end - 1)  # release_day 1: cut at day `end`


def delay(users: int, strength: float, seed: int, step: int, where: Path) -> None:
    print("| data end (day) | journeys | censored | in-progress estimates | completed only |\n|---|---|---|---|---|")
    for end in range(32, 61, step):
        params = DemoParams(n_users=users, days=60, release_day=1, seed=seed, segment_divergence=strength)
        snaps, cfg = _stream(params, end, where)
        base = next(s for s in snaps if s.scope == "all").payload
        cells = []
        for ss in (snaps, _completed_only(snaps)):
            found = [f for f in run_detectors(ss, cfg).findings
                     if f.predicate == "diverges_from" and f.subject == "segment:platform=android"]
            cells.append(f"q {found[0].q_value:.2g}, JSD {found[0].effect:.3f}" if found else "-")
        print(f"| {end} | {base['journeys']} | {base['censored']} | {cells[0]} | {cells[1]} |", flush=True)


def calibration(users: int, end: int, seeds: range, where: Path) -> None:
    found: dict[str, list[float]] = {"moves (estimates)": [], "reach (estimates)": [], "moves (completed only)": []}
    for seed in seeds:
        snaps, _ = _stream(DemoParams.null(n_users=users, days=60, release_day=1, seed=seed), end, where)
        views = [SnapView(s) for s in snaps]
        base = next(v for v in views if v.scope == "all")
        for key in ("platform", "plan"):
            values = [v for v in views if v.scope == "segment" and v.segment and v.segment[0] == key]
            for v in values:
                others = [o for o in values if o is not v]
                for name, (stat, dof, *_) in (("moves (estimates)", est.moves_divergence(v, others, 50)),
                                              ("moves (completed only)", transition_divergence(base, v, 50))):
                    if dof:
                        found[name].append(chi2_sf(stat, dof))
                for state in sorted(v.payload.get("reach_estimates") or {}):
                    c = est.compare(est.side([v], f"state:{state}"), est.side(others, f"state:{state}"))
                    if min(c.seg.n_eff, c.rest.n_eff) >= 50:
                        found["reach (estimates)"].append(c.p_value)
    print("| test | tests | share p < 0.05 | share p < 0.01 |\n|---|---|---|---|")
    for name, ps in found.items():
        arr = np.array(ps)
        print(f"| {name} | {len(arr)} | {(arr < 0.05).mean():.3f} | {(arr < 0.01).mean():.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=1500)
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--step", type=int, default=2)
    ap.add_argument("--null-end", type=int, default=45)
    ap.add_argument("--null-seeds", type=int, default=40)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        delay(args.users, args.strength, args.seed, args.step, Path(tmp) / "delay")
        print()
        calibration(args.users, args.null_end, range(100, 100 + args.null_seeds), Path(tmp) / "null")


if __name__ == "__main__":
    main()
