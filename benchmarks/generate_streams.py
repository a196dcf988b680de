"""Write large synthetic event streams (Parquet and JSONL) for the engine benchmarks.

Why synthetic and why this shape: the benchmark must scale to 10 M events on a
small machine in seconds, so every step is numpy (one vectorised step per
journey step, via the demo generator's `walk`) and pyarrow / DuckDB for the
writing. The chain has 30 raw states (event names), three platform segments
with slightly different rows, a purchase outcome and silence as drop-off,
over eight weeks, with a release marker in the middle: the same kind of work
`journeygraph run` does on real product data.

    python benchmarks/generate_streams.py --events 1m 2m 10m [--formats parquet jsonl]

Files land in benchmarks/data/ (gitignored) with a matching journeygraph config
`bench.yaml`. Same arguments give the same files.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fixtures.generate_demo import group_cumsum, step_gaps, walk  # noqa: E402

DATA = ROOT / "benchmarks" / "data"
N_STATES = 30
PLATFORMS = ("web", "ios", "android")
PLANS = ("free", "pro", "team")
EPOCH = np.datetime64("2026-01-05T00:00:00", "s")
DAYS = 56
RELEASE_DAY = 21
STATE_NAMES = ("signup",) + tuple(f"screen_{k:02d}" for k in range(1, N_STATES))
OUTCOME_EVENT = "purchase"
CONVERT_P, DROP_P = 0.03, 0.10
EVENTS_PER_USER = 7.9  # measured mean (start + steps + purchase), used to size the user count
SIZES = {"100k": 100_000, "1m": 1_000_000, "2m": 2_000_000, "10m": 10_000_000}

CONFIG = f"""# Benchmark project for benchmarks/data/events_*.{{parquet,jsonl}} (written by generate_streams.py)
journeys:
  main:
    level: raw
    start: signup
    outcomes:
      converted: "event_name = '{OUTCOME_EVENT}'"
      dropped: {{inactive_for: 14d}}
    window: 30d
segments:
  platform: {{column: platform}}
  plan: {{column: properties.plan}}
releases:
  - {{name: r1, at: "{EPOCH + np.timedelta64(RELEASE_DAY * 86400, 's')}Z"}}
snapshots: {{period: 7d}}
"""


def chain(rng: np.random.Generator) -> np.ndarray:
    """Three platform variants of a sparse 30-state absorbing chain (columns: states, converted, dropped)."""
    P = np.zeros((len(PLATFORMS), N_STATES, N_STATES + 2))
    for i in range(N_STATES):
        succ = rng.choice(np.delete(np.arange(1, N_STATES), i - 1 if i else []), size=6, replace=False)
        weights = rng.dirichlet(np.full(6, 1.5))
        for v in range(len(PLATFORMS)):
            w = weights * rng.uniform(0.8, 1.25, size=6)
            P[v, i, succ] = (1 - CONVERT_P - DROP_P) * w / w.sum()
            P[v, i, N_STATES:] = (CONVERT_P, DROP_P)
    return P


def simulate(n_events: int, seed: int, days: int = DAYS) -> pa.Table:
    """About ``n_events`` events, ordered by time, as an Arrow table in the Events-in shape; signups spread
    over ``days`` (benchmarks/bench_history_length.py makes longer histories at the same daily rate)."""
    rng = np.random.default_rng(seed)
    n_users = max(1, int(n_events / EVENTS_PER_USER))
    platform = rng.choice(len(PLATFORMS), size=n_users, p=[0.5, 0.3, 0.2])
    plan = rng.choice(len(PLANS), size=n_users, p=[0.7, 0.2, 0.1])
    signup = rng.integers(0, days * 86400, size=n_users)
    actor, step, col = walk(chain(rng), platform, 0, rng, max_steps=60)
    keep = col != N_STATES + 1
    actor, step, col = actor[keep], step[keep], col[keep]
    order = np.lexsort((step, actor))
    actor, step, col = actor[order], step[order], col[order]
    t = signup[actor] + group_cumsum(np.where(step == 0, 0, step_gaps(len(step), rng)), actor)
    by_time = np.lexsort((step, actor, t))
    actor, col, t = actor[by_time], col[by_time], t[by_time]
    return _table(actor, col, t, platform, plan, rng)


def _table(actor: np.ndarray, col: np.ndarray, t: np.ndarray, platform: np.ndarray, plan: np.ndarray,
           rng: np.random.Generator) -> pa.Table:
    names = pa.array(STATE_NAMES + (OUTCOME_EVENT,))
    ids = rng.permutation(len(t)).astype(np.int64)
    seconds = pa.array((EPOCH.astype(np.int64) + t).astype(np.int64)).cast(pa.timestamp("s"))
    stamps = pa.compute.strftime(seconds, format="%Y-%m-%dT%H:%M:%SZ")
    plans = pa.array(PLANS).take(pa.array(plan[actor]))
    return pa.table({
        "event_id": pa.compute.binary_join_element_wise("e", pa.array(ids).cast(pa.string()), ""),
        "user_id": pa.compute.binary_join_element_wise("u", pa.array(actor.astype(np.int64)).cast(pa.string()), ""),
        "event_name": names.take(pa.array(col)),
        "timestamp": stamps,
        "platform": pa.array(PLATFORMS).take(pa.array(platform[actor])),
        "properties": pa.StructArray.from_arrays([plans], names=["plan"]),
    })


def write(table: pa.Table, label: str, formats: list[str]) -> list[Path]:
    """Parquet through pyarrow, JSONL through DuckDB's JSON writer (both streaming, no Python rows)."""
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "bench.yaml").write_text(CONFIG)
    out = []
    if "parquet" in formats:
        path = DATA / f"events_{label}.parquet"
        pq.write_table(table, path, compression="zstd")
        out.append(path)
    if "jsonl" in formats:
        path = DATA / f"events_{label}.jsonl"
        con = duckdb.connect()
        con.register("events", table)
        con.execute(f"COPY (SELECT * FROM events) TO '{path}' (FORMAT JSON)")
        con.close()
        out.append(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", nargs="+", default=["1m"], choices=sorted(SIZES), help="stream sizes to write")
    parser.add_argument("--formats", nargs="+", default=["parquet", "jsonl"], choices=["parquet", "jsonl"])
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    for label in args.events:
        started = time.perf_counter()
        table = simulate(SIZES[label], args.seed)
        simulated = time.perf_counter() - started
        paths = write(table, label, args.formats)
        total = time.perf_counter() - started
        sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.0f} MB" for p in paths)
        print(f"{label}: {table.num_rows} events, simulated in {simulated:.1f} s, written in {total - simulated:.1f} s ({sizes})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
