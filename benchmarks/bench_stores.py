"""Fact store benchmark: facts/s written and p50 lookup latency by entity, per backend.

    python benchmarks/bench_stores.py --backend embedded --sizes 10000 100000

Each backend is one function `bench_<name>(facts, workdir) -> dict` that opens
its store and hands it to `measure`, so every backend is timed the same way.
Facts are synthetic but detector-shaped (seeded), validated on write like in
production. Wall time and process CPU time are both reported because the
machines this runs on are often shared.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ontology.model import Fact, Provenance
from ontology.store import FactStore, open_store

LOOKUPS = 200


def synthetic_facts(n: int, seed: int = 42) -> list[Fact]:
    """n distinct facts: transitions, activation drivers and drop-offs over ~n/25 states, 10 snapshots."""
    rng = random.Random(seed)
    states = max(20, n // 25)
    facts = []
    for i in range(n):
        a, b = rng.randrange(states), rng.randrange(states)
        prov = Provenance(f"snap{i % 10}", "bench@1", "cfg", "0.1.0")
        kind = i % 3
        if kind == 0:
            count = rng.randrange(1, 1000)
            fact = Fact(f"state:s{a}", "transitions_to", f"state:s{b}", round(rng.random(), 6),
                        "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                        {"journey": "activation", "count": count, "from_total": count + rng.randrange(1000),
                         "probability": round(rng.random(), 6), "i": i}, prov)
        elif kind == 1:
            fact = Fact(f"state:s{a}", "is_activation_driver_for", "outcome:converted", round(rng.random(), 6),
                        "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                        {"journey": "activation", "reach": 0.4, "lift": round(1 + 3 * rng.random(), 6),
                         "p_given_reached": 0.5, "p_given_not_reached": 0.15, "n": 1800 + i, "n_reached": 700,
                         "removal_effect": 0.14, "removal_effect_relative": 0.5, "absorption": 0.57, "baseline": 0.16,
                         "p_value": 0.001, "q_value": 0.002}, prov)
        else:
            fact = Fact(f"state:s{a}", "is_dropoff_point_for", "journey:activation", round(rng.random(), 6),
                        "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                        {"journey": "activation", "exit_probability": round(rng.random(), 6), "reach": 0.5,
                         "n": 1000 + i, "n_reached": 500, "dropoff_outcome": "dropped", "p_value": 0.01, "q_value": 0.02}, prov)
        facts.append(fact)
    return facts


def measure(store: FactStore, facts: list[Fact], *, batch: int = 10_000, seed: int = 1) -> dict[str, Any]:
    """Write all facts in batches, rewrite them (idempotent path), then time entity lookups."""
    wall, cpu = time.perf_counter(), time.process_time()
    written = sum(store.write(facts[i:i + batch]) for i in range(0, len(facts), batch))
    write_wall, write_cpu = time.perf_counter() - wall, time.process_time() - cpu
    wall = time.perf_counter()
    rewritten = store.write(facts[:batch])
    rewrite_wall = time.perf_counter() - wall
    rng = random.Random(seed)
    entities = [rng.choice(facts).subject for _ in range(LOOKUPS)]
    latencies, hits = lookups(store, entities)
    extra: dict[str, Any] = {}
    if hasattr(store, "optimize"):  # embedded: compaction, which close() also runs after writes
        wall = time.perf_counter()
        store.optimize()
        extra["optimize_s"] = round(time.perf_counter() - wall, 3)
        compacted, _ = lookups(store, entities)
        extra["lookup_p50_ms_before_optimize"] = round(1000 * statistics.median(latencies), 3)
        latencies = compacted
    return {**extra,
        "facts": len(facts), "written": written, "rewritten_new": rewritten, "count": store.count(),
        "write_s": round(write_wall, 3), "write_cpu_s": round(write_cpu, 3),
        "facts_per_s": round(len(facts) / write_wall), "facts_per_cpu_s": round(len(facts) / max(write_cpu, 1e-9)),
        "rewrite_10k_s": round(rewrite_wall, 3),
        "lookup_p50_ms": round(1000 * statistics.median(latencies), 3),
        "lookup_p95_ms": round(1000 * latencies[int(0.95 * len(latencies)) - 1], 3),
        "facts_per_lookup": round(hits / LOOKUPS, 1),
    }


def lookups(store: FactStore, entities: list[str]) -> tuple[list[float], int]:
    """Sorted latencies (s) of facts(entity=…) for each entity, and the facts found."""
    latencies, hits = [], 0
    for entity in entities:
        start = time.perf_counter()
        hits += len(list(store.facts(entity=entity)))
        latencies.append(time.perf_counter() - start)
    return sorted(latencies), hits


def bench_embedded(facts: list[Fact], workdir: Path) -> dict[str, Any]:
    """The default Oxigraph store on disk under workdir/facts."""
    with open_store("embedded", None, workdir) as store:  # type: ignore[attr-defined]
        return measure(store, facts)


def oxigraph_floor(facts: list[Fact], workdir: Path, *, batch: int = 10_000) -> dict[str, Any]:
    """What Oxigraph's on-disk bulk loader alone costs for these facts' N-Quads (no validation, no formatting).

    The text is built untimed, then loaded twice into fresh stores: as the
    store writes it (per batch: data, then markers) and in one call. This is
    the floor any write path that keeps this RDF mapping in one on-disk
    Oxigraph store pays (README-store.md, Throughput).
    """
    import pyoxigraph as ox

    from ontology import rdf

    texts = [rdf.nquads(facts[i:i + batch]) for i in range(0, len(facts), batch)]
    quads = sum(d.count(b"\n") + m.count(b"\n") for d, m in texts)
    plans = {"batched": [blob for pair in texts for blob in pair],
             "one_call": [b"".join(d for d, _ in texts) + b"".join(m for _, m in texts)]}
    out: dict[str, Any] = {"facts": len(facts), "quads_loaded_per_fact": round(quads / len(facts), 2)}
    for name, loads in plans.items():
        store = ox.Store(str(workdir / name))
        wall, cpu = time.perf_counter(), time.process_time()
        for blob in loads:
            store.bulk_load(blob, ox.RdfFormat.N_QUADS, lenient=True)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        out[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "facts_per_s": round(len(facts) / wall),
                     "facts_per_cpu_s": round(len(facts) / cpu), "us_cpu_per_quad": round(1e6 * cpu / quads, 2)}
        del store
    return out


BACKENDS: dict[str, Callable[[list[Fact], Path], dict[str, Any]]] = {"embedded": bench_embedded}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(BACKENDS), default="embedded")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    parser.add_argument("--floor", action="store_true",
                        help="also time Oxigraph's bulk loader alone on the same N-Quads (embedded only)")
    parser.add_argument("--out", type=Path, help="also write all results as one JSON file")
    args = parser.parse_args(argv)
    results = []
    for size in args.sizes:
        facts = synthetic_facts(size)
        with tempfile.TemporaryDirectory(prefix="jg-bench-") as tmp:
            result = {"backend": args.backend, **BACKENDS[args.backend](facts, Path(tmp))}
        if args.floor and args.backend == "embedded":
            with tempfile.TemporaryDirectory(prefix="jg-floor-") as tmp:
                result["oxigraph_floor"] = oxigraph_floor(facts, Path(tmp))
        results.append(result)
        print(json.dumps(result) if args.json else _line(args.backend, size, result), flush=True)
    if args.out:
        meta = {"load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
        args.out.write_text(json.dumps({"machine": meta, "results": results}, indent=2) + "\n")
    return 0


def _line(backend: str, size: int, result: dict[str, Any]) -> str:
    text = (f"{backend:9} {size:>7} facts: {result['facts_per_s']:>7} facts/s wall "
            f"({result['facts_per_cpu_s']} per CPU-s), lookup by entity p50 {result['lookup_p50_ms']} ms "
            f"p95 {result['lookup_p95_ms']} ms ({result['facts_per_lookup']} facts/lookup)")
    floor = result.get("oxigraph_floor")
    if floor:
        text += (f"; Oxigraph alone: {floor['batched']['facts_per_s']} facts/s wall batched, "
                 f"{floor['one_call']['facts_per_s']} in one call ({floor['quads_loaded_per_fact']} quads loaded/fact, "
                 f"{floor['batched']['us_cpu_per_quad']} / {floor['one_call']['us_cpu_per_quad']} µs CPU per quad)")
    return text


if __name__ == "__main__":
    sys.exit(main())
