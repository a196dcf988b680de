"""Neo4j store benchmark: facts/s through Bolt and p50 lookup latency by entity, at 10k and 100k facts.

    python benchmarks/bench_neo4j.py --sizes 10000 100000          # starts a throw-away ArcadeDB Bolt server
    NEO4J_URI=bolt://… NEO4J_PASSWORD=… python benchmarks/bench_neo4j.py --wipe   # a real Neo4j (database is emptied!)

Same facts and the same `measure` as benchmarks/bench_stores.py (validated
writes in 10k-fact calls, an idempotent rewrite, 200 seeded entity lookups),
so the numbers compare with the embedded store's. Before each size the
server is warmed up with 2k other facts and emptied, so a JVM's cold JIT is
not billed to the store. The server's own CPU time is reported beside the
client's because the Bolt server shares the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from contextlib import contextmanager
import importlib.util

from engine.config import StoreConfig
from ontology.neo4j_store import Neo4jStore

sys.path.insert(0, str(Path(__file__).parent))
from bench_stores import measure, synthetic_facts  # noqa: E402


def _load_boltserver() -> Any:
    """tests/boltserver.py by file path: putting tests/ on sys.path would shadow our packages with tests/<pkg>."""
    path = Path(__file__).parents[1] / "tests" / "boltserver.py"
    spec = importlib.util.spec_from_file_location("boltserver", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules["boltserver"] = module
    spec.loader.exec_module(module)
    return module


BoltServer = _load_boltserver().BoltServer


def _cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a process from /proc (Linux), or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return None


@contextmanager
def _target(heap: str) -> Iterator[tuple[StoreConfig, int | None, str]]:
    """NEO4J_URI if set, else a throw-away ArcadeDB server; yields (config, server pid, description)."""
    if os.environ.get("NEO4J_URI"):
        yield StoreConfig(backend="neo4j"), None, os.environ["NEO4J_URI"]
        return
    with tempfile.TemporaryDirectory(prefix="jg-bench-bolt-") as tmp, BoltServer(Path(tmp), heap=heap) as server:
        cfg = StoreConfig(backend="neo4j", uri=server.uri, user=server.auth[0], password=server.password,
                          database=server.database)
        yield cfg, server.pid, f"ArcadeDB Bolt {server.uri} (heap {heap})"


def _wipe(store: Neo4jStore) -> None:
    with store._driver.session(database=store.conn.database) as session:
        session.run("MATCH (n) DETACH DELETE n").consume()


def bench_size(cfg: StoreConfig, pid: int | None, size: int, wipe: bool) -> dict[str, Any]:
    facts = synthetic_facts(size)
    with Neo4jStore.open(cfg) as store:
        if store.count() and not wipe:
            raise SystemExit(f"the database at {store.conn.uri} is not empty; pass --wipe to empty it first")
        store.write(synthetic_facts(2_000, seed=99))  # warm-up, then start from nothing
        _wipe(store)
        cpu0, wall0 = _cpu_seconds(pid), time.perf_counter()
        result = measure(store, facts)
        cpu1 = _cpu_seconds(pid)
        result["total_wall_s"] = round(time.perf_counter() - wall0, 3)
        result["server_cpu_s"] = round(cpu1 - cpu0, 3) if cpu0 is not None and cpu1 is not None else None
        result["dialect"], result["batch_size"] = store.dialect.name, store.dialect.batch_size
        _wipe(store)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--heap", default="2g", help="JVM heap of the throw-away ArcadeDB server")
    parser.add_argument("--wipe", action="store_true", help="empty a non-empty NEO4J_URI database first (and after)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per size")
    args = parser.parse_args(argv)
    with _target(args.heap) as (cfg, pid, where):
        print(f"server: {where}", file=sys.stderr, flush=True)
        for size in args.sizes:
            result = {"backend": "neo4j", "server": where, **bench_size(cfg, pid, size, args.wipe or pid is not None)}
            print(json.dumps(result) if args.json else
                  f"neo4j ({result['dialect']}) {size:>7} facts: {result['facts_per_s']:>7} facts/s wall "
                  f"({result['facts_per_cpu_s']} per client CPU-s, server CPU {result['server_cpu_s']} s), "
                  f"lookup by entity p50 {result['lookup_p50_ms']} ms p95 {result['lookup_p95_ms']} ms "
                  f"({result['facts_per_lookup']} facts/lookup)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
