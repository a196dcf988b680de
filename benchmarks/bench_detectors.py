"""Benchmark: every detector over synthetic snapshots of 30 states × 3 segments × 8 periods.

Payloads are built directly (expected counts of seeded random chains, no
events), so this measures the detectors, BH, confidence and fact building
alone. Cells differ slightly per segment and period so the comparisons have
real work (and some real effects) to find.

    python benchmarks/bench_detectors.py [--states 30] [--segments 3] [--periods 8] [--journeys 5000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta

import numpy as np

from detectors.runner import run_detectors
from detectors.synthetic import chain_payload, merge_payloads
from engine.config import Config, Release
from engine.snapshot import Snapshot

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def random_chain(n_states: int, rng: np.random.Generator, tilt: float = 0.0) -> dict[str, dict[str, float]]:
    """A sparse random absorbing chain: each state has ~5 successors plus both outcomes."""
    names = [f"s{i:02d}" for i in range(n_states)]
    chain = {}
    for i, name in enumerate(names):
        succ = rng.choice(n_states, size=min(5, n_states), replace=False)
        w = rng.dirichlet(np.ones(len(succ)))
        cont = 0.75 - 0.1 * (i / n_states)
        row = {names[j]: float(cont * p) for j, p in zip(succ, w)}
        conv = 0.05 + 0.1 * (i / n_states) + tilt * (i % 3 == 0) * 0.05
        row["converted"] = row.get("converted", 0.0) + conv
        row["dropped"] = row.get("dropped", 0.0) + 1.0 - cont - conv
        chain[name] = row
    return chain


def build(n_states: int, n_segments: int, n_periods: int, journeys: int, seed: int = 1) -> list[Snapshot]:
    rng = np.random.default_rng(seed)
    base = random_chain(n_states, rng)
    cells = {}
    for s in range(n_segments):
        for p in range(n_periods):
            tilt = (1.0 if s == 0 else 0.0) + (1.0 if p >= n_periods // 2 else 0.0)
            chain = random_chain(n_states, np.random.default_rng(seed), tilt=tilt) if tilt else base
            window = (_iso(T0 + timedelta(days=7 * p)), _iso(T0 + timedelta(days=7 * (p + 1))))
            cells[(s, p)] = chain_payload(chain, journeys=journeys, start="s00", scope="period", window=window,
                                          tag=f"{s}/{p}")
    periods = [merge_payloads([cells[(s, p)] for s in range(n_segments)], scope="period",
                              window=(cells[(0, p)]["window"]["start"], cells[(0, p)]["window"]["end"]))
               for p in range(n_periods)]
    segments = [merge_payloads([cells[(s, p)] for p in range(n_periods)], scope="segment", segment=("plan", f"v{s}"))
                for s in range(n_segments)]
    everything = merge_payloads(list(cells.values()), scope="all")
    return [Snapshot.from_payload(p) for p in [everything, *periods, *segments]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=30)
    parser.add_argument("--segments", type=int, default=3)
    parser.add_argument("--periods", type=int, default=8)
    parser.add_argument("--journeys", type=int, default=5000, help="journeys per segment × period cell")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cfg = Config(source=None, journeys=(), releases=(Release("v2", _iso(T0 + timedelta(days=7 * (args.periods // 2)))),))
    timings = []
    for _ in range(args.repeat):
        snaps = build(args.states, args.segments, args.periods, args.journeys)  # fresh: no cached metrics
        started = time.perf_counter()
        run = run_detectors(snaps, cfg)
        timings.append(time.perf_counter() - started)
    print(json.dumps({
        "states": args.states, "segments": args.segments, "periods": args.periods, "snapshots": len(snaps),
        "findings": len(run.findings), "facts": len(run.facts), "tests": dict(run.tests),
        "seconds_best": round(min(timings), 3), "seconds_median": round(float(np.median(timings)), 3),
    }, indent=2))


if __name__ == "__main__":
    main()
