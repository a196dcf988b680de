"""Censoring simulation study, thorough version: bias, RMSE and 95 % coverage of the in-progress estimators.

Same simulation as tests/engine/test_incidence.py (tests/engine/censoring_sim.py holds it), with more
replicates, two sample sizes and two data spans (the shorter the span relative to the 30-day window,
the more journeys are still open at the data end). Also the step study: resolved steps vs the naive
"destination already seen" rule, and the journey study: reach (first-entry Aalen–Johansen), path shares
(IPCW) and median duration (IPCW Kaplan–Meier) against the old (mature only) and naive (ended by the data
end) rules. Writes Markdown tables (stdout) and JSON (--json).

    python benchmarks/bench_censoring.py --reps 2000 --journey-reps 1000 --json benchmarks/results/censoring.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine import censoring_sim as sim  # noqa: E402


def outcome_rows(reps: int, seed: int) -> list[dict[str, object]]:
    rows = []
    for span in (45.0, 90.0):
        for n in (500, 3000):
            for pattern in sim.PATTERNS:
                res = sim.outcome_study(pattern, reps, n, span, seed)
                for name in ("old", "naive", "aalen_johansen"):
                    rows.append({"pattern": pattern.name, "span_days": span, "n": n, "estimator": name,
                                 "truth": round(sim.truth(pattern), 4), **{k: round(v, 4) for k, v in res[name].items()},
                                 "journeys_used": round(res["n"].get(name, float("nan")), 1)})
    return rows


def journey_rows(reps: int, seed: int) -> list[dict[str, object]]:
    """Reach, path shares and median duration (engine.snapshot_estimates) against the old and naive rules."""
    rows = []
    for span in (45.0, 90.0):
        for n in (500, 3000):
            for pattern in sim.PATTERNS:
                res = sim.journey_study(pattern, reps, n, span, seed)
                truth = sim.journey_truth(pattern)
                for name in ("new", "old", "naive"):
                    r = res[name]
                    for q, quantity in enumerate(sim.QUANTITIES):
                        rows.append({"pattern": pattern.name, "span_days": span, "n": n, "estimator": name,
                                     "quantity": quantity, "truth": round(float(truth[q]), 4),
                                     "bias": round(float(r["bias"][q]), 4), "bias_se": round(float(r["bias_se"][q]), 4),
                                     "rmse": round(float(r["rmse"][q]), 4),
                                     "coverage": None if np.isnan(r["coverage"][q]) else round(float(r["coverage"][q]), 3),
                                     "journeys_used": round(float(res["n"]["used"][("new", "old", "naive").index(name)]), 1)})
    return rows


def step_rows(reps: int, seed: int) -> list[dict[str, object]]:
    rng = np.random.default_rng(seed)
    runs = [sim.step_replicate(4000, 20.0, rng) for _ in range(reps)]
    out = []
    for name in ("resolved", "naive"):
        est = np.array([r[name] for r in runs])
        bias = est.mean(axis=0) - sim.STEP_TRUTH
        out.append({"estimator": name, "bias_fast": round(float(bias[0]), 4), "bias_slow": round(float(bias[1]), 4),
                    "bias_dropped": round(float(bias[2]), 4)})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--journey-reps", type=int, default=1000, help="replicates of the reach/path/duration study")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    outcomes, steps = outcome_rows(args.reps, args.seed), step_rows(args.reps, args.seed)
    journeys = journey_rows(args.journey_reps, args.seed)
    print("| pattern | span (d) | n | estimator | bias | RMSE | 95 % coverage | journeys used |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in outcomes:
        print(f"| {r['pattern']} | {r['span_days']:.0f} | {r['n']} | {r['estimator']} | {r['bias']:+.4f} | "
              f"{r['rmse']:.4f} | {r['coverage']:.3f} | {r['journeys_used']} |")
    print("\n| step estimator | bias fast | bias slow | bias dropped |\n| --- | --- | --- | --- |")
    for r in steps:
        print(f"| {r['estimator']} | {r['bias_fast']:+.4f} | {r['bias_slow']:+.4f} | {r['bias_dropped']:+.4f} |")
    print("\n| pattern | span (d) | n | quantity | estimator | truth | bias (SE) | RMSE | 95 % coverage | journeys used |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in journeys:
        cover = "–" if r["coverage"] is None else f"{r['coverage']:.3f}"
        print(f"| {r['pattern']} | {r['span_days']:.0f} | {r['n']} | {r['quantity']} | {r['estimator']} | {r['truth']} | "
              f"{r['bias']:+.4f} ({r['bias_se']:.4f}) | {r['rmse']:.4f} | {cover} | {r['journeys_used']} |")
    if args.json:
        args.json.write_text(json.dumps({"reps": args.reps, "journey_reps": args.journey_reps, "seed": args.seed,
                                         "outcomes": outcomes, "steps": steps, "journeys": journeys}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
